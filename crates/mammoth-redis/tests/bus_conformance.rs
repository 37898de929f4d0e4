//! The bus conformance suite against a real Redis server (`MAMMOTH_TEST_REDIS_URL`, such as
//! `redis://127.0.0.1:6379`), each scenario under its own key prefix so runs never collide.
//! Without the variable the scenarios print a skip reason and pass, except under `CI=true`,
//! where a missing or unreachable server fails them.

use mammoth_redis::{RedisBus, RedisBusOptions};
use mammoth_testkit::{BusFactory, bus_conformance_tests};

/// Buses with a fresh key prefix each on the server named by `MAMMOTH_TEST_REDIS_URL`.
struct OnRedis;

fn url() -> Option<String> {
    match std::env::var("MAMMOTH_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!(
                "CI=true but MAMMOTH_TEST_REDIS_URL is not set: Redis tests cannot be skipped in CI"
            )
        }
        _ => None,
    }
}

async fn connect(url: &str, prefix: String) -> RedisBus {
    let options = RedisBusOptions {
        key_prefix: prefix,
        ..RedisBusOptions::default()
    };
    RedisBus::connect(url, options)
        .await
        .unwrap_or_else(|error| panic!("redis bus at {url}: {error} (is redis-server running?)"))
}

impl BusFactory for OnRedis {
    type Bus = RedisBus;

    async fn fresh(&self) -> RedisBus {
        let url = url().expect("checked by the test before the factory is used");
        let prefix = format!("mammoth-test:{}:", uuid::Uuid::new_v4().simple());
        connect(&url, prefix).await
    }

    /// The shared server keeps its data while it runs, so a reopen is a new connection with
    /// the same prefix.
    async fn reopen(&self, bus: RedisBus) -> Option<RedisBus> {
        let url = url().expect("checked by the test before the factory is used");
        let prefix = bus.options().key_prefix.clone();
        drop(bus);
        Some(connect(&url, prefix).await)
    }
}

/// Expands the suite only when a server is named; otherwise each scenario prints why it is
/// skipped.
macro_rules! redis_or_skip {
    () => {{
        if url().is_none() {
            eprintln!("skipped: set MAMMOTH_TEST_REDIS_URL (such as redis://127.0.0.1:6379) to run the Redis bus conformance suite");
            return;
        }
        OnRedis
    }};
}

bus_conformance_tests!(redis_or_skip!());
