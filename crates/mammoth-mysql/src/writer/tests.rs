//! The writer's shortcuts against a real MySQL or MariaDB server: a guessed head of a new stream, and the wait
//! for answered callers. Skipped without `MAMMOTH_TEST_MYSQL_URL` (a failure under
//! `CI=true`); each test uses a database of its own.

use mammoth_core::{Direction, EventStore, ExpectedVersion, NewEvent, StoreError, StreamId};
use tokio::sync::mpsc;

use super::{Request, wait_for_answered};
use crate::{MysqlEventStore, MysqlOptions, drop_database};

const URL_VAR: &str = "MAMMOTH_TEST_MYSQL_URL";

fn url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {URL_VAR} is not set"
            );
            eprintln!("skipped: set {URL_VAR} to run the MySQL writer tests");
            None
        }
    }
}

fn options(database: &str) -> MysqlOptions {
    MysqlOptions {
        database: Some(database.to_owned()),
        pool_size: 2,
        ..MysqlOptions::default()
    }
}

fn event(n: u32) -> NewEvent {
    NewEvent::from_json_text("Deposited", format!(r#"{{"amount":{n}}}"#))
}

/// Two store handles on one database stand for two processes: the second has never seen the
/// stream the first wrote, so it guesses the stream is new, and the unique index must turn the
/// guess into a conflict with the real head instead of a second version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_stream_guess_on_a_stream_another_process_wrote_is_a_conflict() {
    let Some(url) = url() else { return };
    let database = format!("mammoth_test_writer_guess_{}", std::process::id());
    let _ = drop_database(&url, &database).await;
    let first = MysqlEventStore::open(&url, options(&database))
        .await
        .expect("open");
    let second = MysqlEventStore::open(&url, options(&database))
        .await
        .expect("open again");
    let stream = StreamId::new("account-1").expect("stream id");
    first
        .append(&stream, ExpectedVersion::NoStream, vec![event(1), event(2)])
        .await
        .expect("the first process creates the stream");

    for expected in [ExpectedVersion::Exact(0), ExpectedVersion::NoStream] {
        match second.append(&stream, expected, vec![event(3)]).await {
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, 2, "{expected}"),
            other => panic!("expected a conflict at version 2 for {expected}, got {other:?}"),
        }
    }
    let written = second
        .append(&stream, ExpectedVersion::Exact(2), vec![event(4)])
        .await
        .expect("the real head is accepted");
    assert_eq!(written.first_version, 3);
    let versions: Vec<u64> = first
        .read_stream(&stream, Direction::Forward, None, 10)
        .await
        .expect("read")
        .iter()
        .map(|event| event.version)
        .collect();
    assert_eq!(versions, [1, 2, 3], "no duplicate or missing version");

    let brand_new = StreamId::new("account-2").expect("stream id");
    let created = second
        .append(&brand_new, ExpectedVersion::Exact(0), vec![event(5)])
        .await
        .expect("a stream that is in fact new is created");
    assert_eq!(created.first_version, 1);

    first.close().await.expect("close");
    second.close().await.expect("close");
    drop_database(&url, &database)
        .await
        .expect("drop the database");
}

/// The writer waits for answered callers only while they keep coming: with none queued it
/// returns (after a couple of yields) instead of waiting for callers that are busy elsewhere.
#[tokio::test]
async fn waiting_for_answered_callers_ends_when_none_come() {
    let (_sender, requests) = mpsc::channel::<Request>(4);
    wait_for_answered(&requests, 1, 64).await;
}
