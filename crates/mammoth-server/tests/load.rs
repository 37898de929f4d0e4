//! A short, bounded load test over loopback HTTP: 16 clients, 2,000 one-event appends on a
//! SQLite store, then the same in process. It prints both rates; it asserts only that every
//! append landed (no timing assertion).

use mammoth_core::EventStore as _;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 125;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_append_two_thousand_events_over_http_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteEventStore::open(dir.path().join("http.db"), SqliteOptions::default()).unwrap();
    let http = mammoth_server::bench::over_http(store.clone(), CLIENTS, PER_CLIENT)
        .await
        .unwrap();
    assert_eq!(
        store.head_position().await.unwrap(),
        (CLIENTS * PER_CLIENT) as u64
    );
    let local_store =
        SqliteEventStore::open(dir.path().join("local.db"), SqliteOptions::default()).unwrap();
    let local = mammoth_server::bench::in_process(local_store.clone(), CLIENTS, PER_CLIENT)
        .await
        .unwrap();
    assert_eq!(
        local_store.head_position().await.unwrap(),
        (CLIENTS * PER_CLIENT) as u64
    );
    println!(
        "load: {} appends by {CLIENTS} clients: over HTTP {:.0}/s ({:.2} s), in process {:.0}/s ({:.2} s)",
        http.appends,
        http.per_second(),
        http.elapsed.as_secs_f64(),
        local.per_second(),
        local.elapsed.as_secs_f64()
    );
}
