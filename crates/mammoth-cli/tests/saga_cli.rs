//! `mammoth sagas list|show` and `mammoth status` on a small SQLite store: two trips of the
//! runtime tests' toy saga, one completed and one compensated after a rejected command,
//! written by the real saga runner; then the built binary is run and its output checked.

#[path = "../../mammoth-runtime/tests/saga_toy.rs"]
mod saga_toy;
mod support;

use std::collections::HashSet;
use std::time::Duration;

use mammoth_core::InMemoryCheckpointStore;
use mammoth_runtime::saga::SagaRunner;
use mammoth_sqlite::saga::SqliteTimerStore;
use mammoth_sqlite::{SqliteEventStore, SqliteOptions};
use saga_toy::{Answer, Trip, happy, request_trip, serve};
use support::Sandbox;

/// Trip `ok` completes; trip `bad` has its flight rejected and compensates its hotel.
fn trips(sandbox: &Sandbox) {
    let path = sandbox.path().join("store/events.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteEventStore::open(&path, SqliteOptions::default()).unwrap();
        let runner = SagaRunner::new(
            Trip {
                deadline: Duration::from_secs(3600),
            },
            store.clone(),
            SqliteTimerStore::open(&path).unwrap(),
            InMemoryCheckpointStore::new(),
        );
        let mut answered = HashSet::new();
        request_trip(&store, "ok").await;
        for _ in 0..4 {
            runner.catch_up().await.unwrap();
            serve(&store, &mut answered, happy).await;
        }
        request_trip(&store, "bad").await;
        for _ in 0..4 {
            runner.catch_up().await.unwrap();
            serve(&store, &mut answered, |command| match command {
                "BookFlight" => Answer::Reject("no seats"),
                other => happy(other),
            })
            .await;
        }
        runner.catch_up().await.unwrap();
        store.close().await.unwrap();
    });
}

#[test]
fn sagas_list_filters_by_status_and_show_prints_the_timeline_with_compensation() {
    let sandbox = Sandbox::new();
    trips(&sandbox);

    let all = sandbox.run(&["sagas", "list"]);
    let text = all.ok();
    assert!(text.starts_with("TYPE"), "{text}");
    let ok = text.lines().find(|line| line.contains(" ok ")).unwrap();
    assert!(ok.contains("completed") && ok.contains(" 4 "), "{ok}");
    let bad = text.lines().find(|line| line.contains(" bad ")).unwrap();
    assert!(bad.contains("compensated") && bad.contains("BookFlight rejected: no seats"));

    let compensated = sandbox
        .run(&["sagas", "list", "--status", "compensated", "--json"])
        .json();
    let rows = compensated.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["saga_id"], "bad");
    assert_eq!(rows[0]["saga_type"], "trip");
    let none = sandbox
        .run(&["sagas", "list", "--type", "order", "--json"])
        .json();
    assert_eq!(none.as_array().unwrap().len(), 0);

    let show = sandbox.run(&["sagas", "show", "trip-bad"]);
    // Columns are padded: compare with runs of spaces squeezed to one.
    let lines: Vec<String> = show
        .ok()
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let find = |needle: &str| {
        lines
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {lines:#?}"))
    };
    let received = find("received TripRequested");
    let hotel = find("command BookHotel -> bookings");
    let deadline = find("hotel scheduled for");
    let rejected = find("rejected rejected BookFlight: no seats");
    let compensating = find("running -> compensating (BookFlight rejected: no seats)");
    let cancel = find("compensation CancelHotel");
    let done = find("compensating -> compensated");
    assert!(received < hotel && hotel < rejected && rejected < cancel && cancel < done);
    assert!(deadline < rejected && compensating < cancel);
    // Every line starts with its time.
    assert!(
        lines[1..].iter().all(|line| line.starts_with("20")),
        "{lines:#?}"
    );

    let json = sandbox
        .run(&["sagas", "show", "$saga-trip-bad", "--json"])
        .json();
    let kinds: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"compensation") && kinds.contains(&"rejected"));

    sandbox
        .run(&["sagas", "show", "trip-nobody"])
        .failed_with(2);
}

#[test]
fn status_counts_sagas_per_type_and_status() {
    let sandbox = Sandbox::new();
    trips(&sandbox);
    let status = sandbox.run(&["status", "--json"]).json();
    assert!(status["head"].as_u64().unwrap() > 10);
    let sagas = status["sagas"].as_array().unwrap();
    let pairs: Vec<(String, u64)> = sagas
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [("compensated".to_owned(), 1), ("completed".to_owned(), 1)]
    );
    let text = sandbox.run(&["status"]);
    assert!(
        text.ok()
            .contains("sagas       trip: compensated 1, completed 1"),
        "{}",
        text.stdout
    );
}
