//! The planner's decisions: versions and offsets of accepted appends, conflicts against cached
//! and fresh heads, replays, ids re-sent inside one group, and replies.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::{GroupAppend, Outcome, plan, reply_all};
use crate::validate::{PreparedEvent, StoredAt};
use crate::{AppendResult, ExpectedVersion, StoreError, StreamId, Version};

struct Append {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<PreparedEvent>,
}

impl GroupAppend for Append {
    fn stream(&self) -> &StreamId {
        &self.stream
    }
    fn expected(&self) -> ExpectedVersion {
        self.expected
    }
    fn events(&self) -> &[PreparedEvent] {
        &self.events
    }
}

fn event(id: Option<Uuid>) -> PreparedEvent {
    PreparedEvent {
        id: id.unwrap_or_else(Uuid::now_v7),
        id_given: id.is_some(),
        event_type: "Placed".to_owned(),
        schema_version: 1,
        data: "{}".to_owned(),
        metadata: "{}".to_owned(),
    }
}

fn append(stream: &str, expected: ExpectedVersion, events: Vec<PreparedEvent>) -> Append {
    Append {
        stream: StreamId::new(stream).unwrap(),
        expected,
        events,
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new(id).unwrap()
}

fn none() -> (HashSet<StreamId>, HashMap<Uuid, StoredAt>) {
    (HashSet::new(), HashMap::new())
}

#[test]
fn appends_to_one_stream_in_a_group_get_consecutive_versions_and_rows() {
    let group = [
        append(
            "order-1",
            ExpectedVersion::Exact(2),
            vec![event(None), event(None)],
        ),
        append("order-2", ExpectedVersion::NoStream, vec![event(None)]),
        append("order-1", ExpectedVersion::Exact(4), vec![event(None)]),
    ];
    let heads = HashMap::from([(stream("order-1"), 2)]);
    let (fresh, found) = none();
    let (outcomes, rows) = plan(&group, &heads, &fresh, &found).unwrap();
    let written: Vec<(Version, u64, u64)> = outcomes
        .iter()
        .map(|outcome| match outcome {
            Outcome::Written {
                first_version,
                offset,
                count,
            } => (*first_version, *offset, *count),
            other => panic!("not written: {other:?}"),
        })
        .collect();
    assert_eq!(written, [(3, 0, 2), (1, 2, 1), (5, 3, 1)]);
    assert_eq!(rows.count, 4);
    assert_eq!(rows.versions, [3, 4, 1, 5]);
    assert_eq!(rows.streams, ["order-1", "order-1", "order-2", "order-1"]);
    assert_eq!(rows.heads[&stream("order-1")], 5);
    assert_eq!(rows.heads[&stream("order-2")], 1);
}

#[test]
fn a_conflict_against_a_cached_head_asks_for_the_stream_to_be_read_again() {
    let group = [
        append("order-1", ExpectedVersion::Exact(7), vec![event(None)]),
        append("order-1", ExpectedVersion::Exact(9), vec![event(None)]),
    ];
    let heads = HashMap::from([(stream("order-1"), 3)]);
    let (fresh, found) = none();
    let stale = plan(&group, &heads, &fresh, &found).unwrap_err();
    assert_eq!(
        stale,
        [stream("order-1")],
        "named once, however many appends it refused"
    );
}

#[test]
fn a_conflict_against_a_freshly_read_head_is_final() {
    let group = [append(
        "order-1",
        ExpectedVersion::Exact(7),
        vec![event(None)],
    )];
    let heads = HashMap::from([(stream("order-1"), 3)]);
    let fresh = HashSet::from([stream("order-1")]);
    let (outcomes, rows) = plan(&group, &heads, &fresh, &HashMap::new()).unwrap();
    assert!(matches!(
        &outcomes[0],
        Outcome::Done(Err(StoreError::Conflict {
            expected: ExpectedVersion::Exact(7),
            actual: 3,
            ..
        }))
    ));
    assert_eq!(rows.count, 0, "nothing is written");
}

#[test]
fn a_conflict_caused_by_an_earlier_append_of_the_group_is_final() {
    let group = [
        append("order-1", ExpectedVersion::NoStream, vec![event(None)]),
        append("order-1", ExpectedVersion::NoStream, vec![event(None)]),
    ];
    let (fresh, found) = none();
    let (outcomes, _) = plan(&group, &HashMap::new(), &fresh, &found).unwrap();
    assert!(matches!(outcomes[0], Outcome::Written { .. }));
    assert!(matches!(
        &outcomes[1],
        Outcome::Done(Err(StoreError::Conflict { actual: 1, .. }))
    ));
}

#[test]
fn a_resent_append_is_answered_with_its_first_result_and_writes_nothing() {
    let id = Uuid::now_v7();
    let group = [append(
        "order-1",
        ExpectedVersion::NoStream,
        vec![event(Some(id))],
    )];
    let found = HashMap::from([(id, ("order-1".to_owned(), 1, 41))]);
    let heads = HashMap::from([(stream("order-1"), 1)]);
    let (outcomes, rows) = plan(&group, &heads, &HashSet::new(), &found).unwrap();
    match &outcomes[0] {
        Outcome::Done(Ok(result)) => {
            assert_eq!((result.first_version, result.first_position), (1, 41))
        }
        other => panic!("not a replay: {other:?}"),
    }
    assert_eq!(rows.count, 0);
}

#[test]
fn an_id_stored_in_another_stream_is_an_error() {
    let id = Uuid::now_v7();
    let group = [append(
        "order-1",
        ExpectedVersion::Any,
        vec![event(Some(id))],
    )];
    let found = HashMap::from([(id, ("order-9".to_owned(), 1, 7))]);
    let (outcomes, _) = plan(&group, &HashMap::new(), &HashSet::new(), &found).unwrap();
    assert!(matches!(
        &outcomes[0],
        Outcome::Done(Err(StoreError::DuplicateEventId { .. }))
    ));
}

#[test]
fn ids_resent_within_one_group_wait_for_the_next_group() {
    let id = Uuid::now_v7();
    let group = [
        append("order-1", ExpectedVersion::Any, vec![event(Some(id))]),
        append("order-1", ExpectedVersion::Any, vec![event(Some(id))]),
    ];
    let (fresh, found) = none();
    let (outcomes, rows) = plan(&group, &HashMap::new(), &fresh, &found).unwrap();
    assert!(matches!(outcomes[0], Outcome::Written { .. }));
    assert!(matches!(outcomes[1], Outcome::Deferred));
    assert_eq!(rows.count, 1, "the id is written once");
}

#[test]
fn reply_all_answers_the_decided_and_returns_the_deferred() {
    let done = AppendResult {
        first_version: 1,
        last_version: 1,
        first_position: 9,
        last_position: 9,
    };
    let outcomes = vec![
        Outcome::Done(Ok(done)),
        Outcome::Deferred,
        Outcome::Written {
            first_version: 1,
            offset: 0,
            count: 1,
        },
    ];
    let mut sent = Vec::new();
    let deferred = reply_all(vec!["a", "b", "c"], outcomes, "test", |name, result| {
        sent.push((name, result.is_ok()));
    });
    assert_eq!(deferred, ["b"]);
    assert_eq!(
        sent,
        [("a", true), ("c", false)],
        "a written append left here gets an error, never silence"
    );
}
