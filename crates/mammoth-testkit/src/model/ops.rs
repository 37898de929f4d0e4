//! The operations the model check generates: appends with every expected-version form (good
//! and bad input, re-sent and reused ids), stream reads, filtered global reads, head and
//! stream versions — small, `Debug`-printable values that are turned into calls at run time.

use mammoth_core::{
    Direction, EventFilter, ExpectedVersion, Limits, Metadata, NewEvent, StreamId, Version,
};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// Streams the operations touch; categories `order` (twice, plus the dashless `order`),
/// `invoice`, `orders`.
pub(crate) const STREAMS: [&str; 5] = ["order-1", "order-2", "invoice-1", "order", "orders-1"];
/// Categories global reads filter on; `ord` matches none of the streams.
const CATEGORIES: [&str; 4] = ["order", "invoice", "orders", "ord"];
/// Event types appends use; `Cancelled` is only ever filtered on.
const TYPES: [&str; 4] = ["Created", "Paid", "Shipped", "Cancelled"];
/// How many distinct caller-given ids exist; few, so they collide across streams often.
const ID_POOL: u8 = 10;

/// An expected version as generated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Expect {
    Any,
    NoStream,
    StreamExists,
    Exact(Version),
}

impl Expect {
    pub(crate) fn to_expected(self) -> ExpectedVersion {
        match self {
            Self::Any => ExpectedVersion::Any,
            Self::NoStream => ExpectedVersion::NoStream,
            Self::StreamExists => ExpectedVersion::StreamExists,
            Self::Exact(version) => ExpectedVersion::Exact(version),
        }
    }
}

/// One event of a generated append.
#[derive(Clone, Debug)]
pub(crate) enum Gen {
    /// A valid event: id from the pool (or none), type index, schema version, metadata kind.
    Good {
        id: Option<u8>,
        kind: usize,
        schema: u32,
        meta: u8,
    },
    /// An event type the store must refuse.
    BadType,
    /// Schema version 0.
    SchemaZero,
    /// Data that is not a JSON object (index into a list of such texts).
    NotObject(usize),
    /// Data one byte over the default size limit.
    Oversize,
}

/// How a re-send differs from the earlier append it repeats.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resend {
    /// The same events to the same stream with the same expected version.
    Same,
    /// The same events to another stream.
    Elsewhere(usize),
    /// The same events in reverse order.
    Reversed,
    /// The same events and one new one.
    PlusOne,
}

/// One generated operation.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Append generated events.
    Append {
        stream: usize,
        expected: Expect,
        events: Vec<Gen>,
    },
    /// Append one event more than the per-append limit.
    TooMany { stream: usize },
    /// Re-send the `nth` successful append so far (modulo their number), changed by `how`.
    Resend { nth: usize, how: Resend },
    /// Read a stream.
    ReadStream {
        stream: usize,
        backward: bool,
        from: Option<Version>,
        limit: usize,
    },
    /// Read the global log from a position (in the model's numbering) with a filter.
    ReadAll {
        from: u64,
        types: Vec<usize>,
        categories: Vec<usize>,
        limit: usize,
    },
    /// The head position.
    Head,
    /// A stream's version.
    StreamVersion { stream: usize },
}

impl Op {
    /// The direction of a stream read.
    pub(crate) fn direction(backward: bool) -> Direction {
        if backward {
            Direction::Backward
        } else {
            Direction::Forward
        }
    }
}

/// The stream at `index` in [`STREAMS`].
pub(crate) fn stream(index: usize) -> StreamId {
    StreamId::new(STREAMS[index % STREAMS.len()]).expect("model stream ids are valid")
}

/// The filter of a generated global read.
pub(crate) fn filter(types: &[usize], categories: &[usize]) -> EventFilter {
    EventFilter::all()
        .with_types(types.iter().map(|&t| TYPES[t % TYPES.len()]))
        .with_categories(categories.iter().map(|&c| CATEGORIES[c % CATEGORIES.len()]))
}

/// The caller-given id number `n` of the pool.
fn pool_id(n: u8) -> Uuid {
    Uuid::from_u128(0x6d61_6d6d_6f74_6800_0000_0000_0000_0000 + u128::from(n))
}

/// Metadata of kind `meta`: empty, a correlation chain, or every field set.
fn metadata(meta: u8, n: usize) -> Metadata {
    match meta % 3 {
        0 => Metadata::default(),
        1 => Metadata {
            correlation_id: Some(pool_id(200)),
            causation_id: Some(pool_id(201 + (n % 3) as u8)),
            ..Metadata::default()
        },
        _ => Metadata {
            actor: Some(format!("user-{n}")),
            tenant: Some("acme".to_owned()),
            trace_context: Some("00-abc-def-01".to_owned()),
            extra: [
                ("seq".to_owned(), json!(n)),
                ("tags".to_owned(), json!(["a", n])),
            ]
            .into_iter()
            .collect(),
            ..Metadata::default()
        },
    }
}

/// The events of a generated append; `n` numbers them so data differs between appends.
pub(crate) fn build(events: &[Gen], n: usize) -> Vec<NewEvent> {
    const NOT_OBJECTS: [&str; 5] = ["[1]", "\"text\"", "7", "{\"a\":", "null"];
    events
        .iter()
        .enumerate()
        .map(|(k, event)| {
            let n = n * 10 + k;
            match event {
                Gen::Good {
                    id,
                    kind,
                    schema,
                    meta,
                } => {
                    let event = NewEvent::json(TYPES[kind % 3], json!({ "n": n }))
                        .expect("model event builds")
                        .with_schema_version(*schema)
                        .with_metadata(metadata(*meta, n));
                    match id {
                        Some(id) => event.with_id(pool_id(*id)),
                        None => event,
                    }
                }
                Gen::BadType => NewEvent::from_json_text("9 lives", "{}"),
                Gen::SchemaZero => NewEvent::from_json_text("Paid", "{}").with_schema_version(0),
                Gen::NotObject(index) => {
                    NewEvent::from_json_text("Paid", NOT_OBJECTS[index % NOT_OBJECTS.len()])
                }
                Gen::Oversize => NewEvent::from_json_text(
                    "Paid",
                    format!(
                        "{{\"p\":\"{}\"}}",
                        "x".repeat(Limits::default().max_event_bytes)
                    ),
                ),
            }
        })
        .collect()
}

/// One more event than the per-append limit.
pub(crate) fn too_many() -> Vec<NewEvent> {
    let count = Limits::default().max_events_per_append + 1;
    (0..count)
        .map(|n| NewEvent::from_json_text("Paid", format!("{{\"n\":{n}}}")))
        .collect()
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        5 => Just(Expect::Any),
        2 => Just(Expect::NoStream),
        2 => Just(Expect::StreamExists),
        4 => (0..5_u64).prop_map(Expect::Exact),
    ]
}

fn event() -> impl Strategy<Value = Gen> {
    let good = (
        prop::option::weighted(0.4, 0..ID_POOL),
        0..3_usize,
        1..4_u32,
        0..3_u8,
    )
        .prop_map(|(id, kind, schema, meta)| Gen::Good {
            id,
            kind,
            schema,
            meta,
        });
    prop_oneof![
        40 => good,
        1 => Just(Gen::BadType),
        1 => Just(Gen::SchemaZero),
        1 => (0..5_usize).prop_map(Gen::NotObject),
        1 => Just(Gen::Oversize),
    ]
}

/// A filter list: usually empty (no filter), else one or two entries.
fn picks(count: usize) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(0..count, 1..3)]
}

fn op() -> impl Strategy<Value = Op> {
    let streams = 0..STREAMS.len();
    let batch = prop_oneof![1 => Just(Vec::new()), 12 => prop::collection::vec(event(), 1..5)];
    prop_oneof![
        40 => (streams.clone(), expect(), batch)
            .prop_map(|(stream, expected, events)| Op::Append { stream, expected, events }),
        1 => streams.clone().prop_map(|stream| Op::TooMany { stream }),
        12 => (0..8_usize, prop_oneof![
                4 => Just(Resend::Same),
                1 => (0..STREAMS.len()).prop_map(Resend::Elsewhere),
                1 => Just(Resend::Reversed),
                1 => Just(Resend::PlusOne),
            ]).prop_map(|(nth, how)| Op::Resend { nth, how }),
        12 => (streams.clone(), any::<bool>(), prop::option::of(0..9_u64), 0..6_usize)
            .prop_map(|(stream, backward, from, limit)| Op::ReadStream { stream, backward, from, limit }),
        16 => (0..14_u64, picks(TYPES.len()), picks(CATEGORIES.len()), 0..8_usize)
            .prop_map(|(from, types, categories, limit)| Op::ReadAll { from, types, categories, limit }),
        3 => Just(Op::Head),
        6 => streams.prop_map(|stream| Op::StreamVersion { stream }),
    ]
}

/// Sequences of 1 to 40 operations.
pub(crate) fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..40)
}
