//! The bus conformance suite against NATS JetStream (`MAMMOTH_TEST_NATS_URL`, such as
//! `nats://127.0.0.1:4222`): each scenario gets its own stream, dead-letter stream, buckets
//! and subject prefix, deleted when the scenario ends. Without the variable the scenarios
//! print a skip reason and pass, except under `CI=true`, where they fail.

mod support;

use std::sync::Mutex;

use mammoth_nats::NatsBus;
use mammoth_testkit::{BusFactory, bus_conformance_tests};

/// Fresh buses on the test server; deletes their streams when dropped.
struct OnNats {
    url: String,
    made: Mutex<Vec<NatsBus>>,
}

impl Drop for OnNats {
    fn drop(&mut self) {
        let made = std::mem::take(&mut *self.made.lock().unwrap_or_else(|e| e.into_inner()));
        if made.is_empty() {
            return;
        }
        // Dropped inside the test's runtime: clean up on a thread with its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                for bus in made {
                    let _ = bus.destroy().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl BusFactory for OnNats {
    type Bus = NatsBus;

    async fn fresh(&self) -> NatsBus {
        let bus = NatsBus::connect(&self.url, support::unique_options())
            .await
            .unwrap_or_else(|error| panic!("nats at {}: {error}", self.url));
        self.made.lock().expect("made").push(bus.clone());
        bus
    }

    /// The server keeps the streams, so a reopen is a new connection with the same names.
    async fn reopen(&self, bus: NatsBus) -> Option<NatsBus> {
        let options = bus.options().clone();
        drop(bus);
        let bus = NatsBus::connect(&self.url, options)
            .await
            .unwrap_or_else(|error| panic!("nats at {}: {error}", self.url));
        Some(bus)
    }
}

bus_conformance_tests!({
    match support::nats_url("the NATS bus conformance scenario") {
        Some(url) => OnNats {
            url,
            made: Mutex::new(Vec::new()),
        },
        None => return,
    }
});
