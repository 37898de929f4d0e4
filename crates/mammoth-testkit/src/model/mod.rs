//! The model check: random operation sequences (see [`ops`]) applied to a fresh
//! [`InMemoryEventStore`] — the model — and to a fresh store from a driver's factory, one
//! operation at a time, with every outcome compared (see [`compare`]).

mod compare;
mod ops;

use mammoth_core::{Direction, EventStore, InMemoryEventStore, NewEvent, Position, StoreError};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use crate::StoreFactory;
use compare::{Mapping, results};
use ops::{Op, Resend, build, filter, stream, too_many};

/// Checks that a driver behaves like the in-memory reference store over `cases` random
/// operation sequences, and panics with the smallest failing sequence it finds.
///
/// Each sequence (1 to 40 operations over five streams) mixes appends with every
/// expected-version form — including bad input (empty batches, bad types, schema version 0,
/// non-object data, oversize events, too many events), ids reused across streams and exact,
/// partial, reversed and misdirected re-sends — with stream reads in both directions with
/// from and limit (including limit 0), global reads from a position with type and category
/// filters and a limit, `head_position` and `stream_version`. Each operation runs on a fresh
/// [`InMemoryEventStore`] and on a fresh store from `factory`; outcomes must be identical,
/// except that global positions are compared by relative order (a driver may leave holes) and
/// ids the stores assign are matched through the events that carry them. Errors must be the
/// same variant with the same structured fields.
///
/// It builds its own tokio runtime, so call it from a plain `#[test]`, not from inside a
/// runtime. The factory must give stores with default limits.
pub fn check_against_model<F: StoreFactory>(factory: F, cases: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the model check's tokio runtime");
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let outcome = runner.run(&ops::ops(), |ops| {
        runtime
            .block_on(run_case(&factory, &ops))
            .map_err(TestCaseError::fail)
    });
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!(
            "the store disagrees with the in-memory model: {reason}\nsmallest failing sequence ({} operations): {ops:#?}",
            ops.len()
        ),
        Err(TestError::Abort(reason)) => panic!("the model check aborted: {reason}"),
    }
}

/// A successful append that may be re-sent: stream index, expected version, events.
type Sent = (usize, mammoth_core::ExpectedVersion, Vec<NewEvent>);

/// Runs one sequence on a fresh model and a fresh driver store.
async fn run_case<F: StoreFactory>(factory: &F, ops: &[Op]) -> Result<(), String> {
    let model = InMemoryEventStore::new();
    let store = factory.fresh().await;
    let mut mapping = Mapping::default();
    let mut sent: Vec<Sent> = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        apply(&model, &store, &mut mapping, &mut sent, op, index)
            .await
            .map_err(|reason| format!("operation {index} {op:?}: {reason}"))?;
    }
    Ok(())
}

/// Applies one operation to both stores and compares the outcomes.
async fn apply<S: EventStore>(
    model: &InMemoryEventStore,
    store: &S,
    mapping: &mut Mapping,
    sent: &mut Vec<Sent>,
    op: &Op,
    index: usize,
) -> Result<(), String> {
    match op {
        Op::Append {
            stream: target,
            expected,
            events,
        } => {
            let batch = build(events, index);
            append(
                model,
                store,
                mapping,
                sent,
                *target,
                expected.to_expected(),
                batch,
            )
            .await
        }
        Op::TooMany { stream: target } => {
            let expected = mammoth_core::ExpectedVersion::Any;
            append(model, store, mapping, sent, *target, expected, too_many()).await
        }
        Op::Resend { nth, how } => {
            if sent.is_empty() {
                return Ok(());
            }
            let (mut target, expected, mut batch) = sent[nth % sent.len()].clone();
            match how {
                Resend::Same => {}
                Resend::Elsewhere(other) if *other == target => target = (target + 1) % 5,
                Resend::Elsewhere(other) => target = *other,
                Resend::Reversed => batch.reverse(),
                Resend::PlusOne => batch.extend(build(
                    &[ops::Gen::Good {
                        id: None,
                        kind: 0,
                        schema: 1,
                        meta: 0,
                    }],
                    index,
                )),
            }
            append(model, store, mapping, sent, target, expected, batch).await
        }
        Op::ReadStream {
            stream: target,
            backward,
            from,
            limit,
        } => {
            let (target, direction) = (stream(*target), Op::direction(*backward));
            let m = model.read_stream(&target, direction, *from, *limit).await;
            let s = store.read_stream(&target, direction, *from, *limit).await;
            results(&m, &s, |m, s| mapping.events(m, s))
        }
        Op::ReadAll {
            from,
            types,
            categories,
            limit,
        } => {
            let filter = filter(types, categories);
            let m = model.read_all(*from, &filter, *limit).await;
            let s = store
                .read_all(mapping.to_store_from(*from), &filter, *limit)
                .await;
            results(&m, &s, |m, s| mapping.events(m, s))
        }
        Op::Head => {
            let m = model.head_position().await;
            let s = store.head_position().await;
            results(&m, &s, |m, s| {
                let seen = mapping.count_up_to(*s);
                if seen == *m {
                    Ok(())
                } else {
                    Err(format!(
                        "store head {s} covers {seen} events, the model's head is {m}"
                    ))
                }
            })
        }
        Op::StreamVersion { stream: target } => {
            let target = stream(*target);
            let m = model.stream_version(&target).await;
            let s = store.stream_version(&target).await;
            results(&m, &s, |m, s| {
                if m == s {
                    Ok(())
                } else {
                    Err(format!("model version {m}, store {s}"))
                }
            })
        }
    }
}

/// Appends `batch` to both stores; when both write, reads the new events back from both to
/// learn the driver's positions and ids, then compares the results.
async fn append<S: EventStore>(
    model: &InMemoryEventStore,
    store: &S,
    mapping: &mut Mapping,
    sent: &mut Vec<Sent>,
    target: usize,
    expected: mammoth_core::ExpectedVersion,
    batch: Vec<NewEvent>,
) -> Result<(), String> {
    let id = stream(target);
    let head_before: Position = model
        .head_position()
        .await
        .map_err(|e| format!("model head: {e}"))?;
    let m = model.append(&id, expected, batch.clone()).await;
    let s = store.append(&id, expected, batch.clone()).await;
    if let (Ok(m_result), Ok(s_result)) = (&m, &s) {
        if m_result.first_position > head_before {
            let count = (m_result.last_version - m_result.first_version + 1) as usize;
            let (m_from, s_from) = (Some(m_result.first_version), Some(s_result.first_version));
            let m_events = model
                .read_stream(&id, Direction::Forward, m_from, count)
                .await;
            let s_events = store
                .read_stream(&id, Direction::Forward, s_from, count)
                .await;
            let (m_events, s_events) = match (m_events, s_events) {
                (Ok(m), Ok(s)) => (m, s),
                (m, s) => {
                    return Err(format!(
                        "reading back a new append failed: model {:?}, store {:?}",
                        m.err(),
                        s.err().map(|e: StoreError| e.to_string())
                    ));
                }
            };
            mapping.learn(&m_events, &s_events)?;
        }
        sent.push((target, expected, batch));
    }
    results(&m, &s, |m, s| mapping.append(m, s))
}
