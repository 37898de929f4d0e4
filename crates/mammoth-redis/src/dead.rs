//! The dead-letter stream (listing, replaying to the group that failed a letter, discarding)
//! and `stats`, which reads `XINFO GROUPS`, `XPENDING`, `ZCARD` and `XLEN` per group.

use std::collections::{BTreeMap, HashMap};

use mammoth_core::bus::{BusError, ConsumerGroup, DeadLetter, DeadLetterFilter, Topic, TopicStats};
use redis::AsyncCommands;

use crate::bus::{RedisBus, corrupt, failed};
use crate::consume::message_from_map;

/// Dead letters read per `XRANGE`.
const PAGE: usize = 256;

type RawEntry = (String, Vec<Vec<u8>>);

pub(crate) fn is_entry_id(id: &str) -> bool {
    let mut parts = id.split('-');
    let numeric = |part: Option<&str>| {
        part.is_some_and(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    };
    numeric(parts.next()) && numeric(parts.next()) && parts.next().is_none()
}

fn letter(id: String, fields: Vec<Vec<u8>>) -> Result<DeadLetter, BusError> {
    const ACTION: &str = "reading a dead letter";
    let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        map.insert(name, value);
    }
    let text = |map: &BTreeMap<Vec<u8>, Vec<u8>>, name: &str| -> Result<String, BusError> {
        map.get(name.as_bytes())
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .ok_or_else(|| corrupt(ACTION, format!("dead letter {id} has no {name:?} field")))
    };
    let number = |map: &BTreeMap<Vec<u8>, Vec<u8>>, name: &str| -> Result<i64, BusError> {
        let value = text(map, name)?;
        value
            .parse()
            .map_err(|_| corrupt(ACTION, format!("dead letter {id}: bad {name:?}: {value:?}")))
    };
    let topic = Topic::new(text(&map, "topic")?)?;
    let group = ConsumerGroup::new(text(&map, "group")?)?;
    let attempts = u32::try_from(number(&map, "n")?).unwrap_or(0);
    let last_error = text(&map, "err")?;
    let first_failed_at_micros = number(&map, "ff")?;
    let last_failed_at_micros = number(&map, "lf")?;
    let message = message_from_map(topic, &mut map)?;
    Ok(DeadLetter {
        id,
        message,
        group,
        attempts,
        last_error,
        first_failed_at_micros,
        last_failed_at_micros,
    })
}

/// Calls `visit` with every dead letter passing `filter`, oldest first, until it returns
/// false.
async fn scan(
    bus: &RedisBus,
    filter: &DeadLetterFilter,
    mut visit: impl FnMut(DeadLetter) -> bool,
) -> Result<(), BusError> {
    let key = bus.dead_key();
    let mut conn = bus.conn();
    let (mut start, end) = match &filter.id {
        Some(id) if !is_entry_id(id) => return Ok(()),
        Some(id) => (id.clone(), id.clone()),
        None => ("-".to_owned(), "+".to_owned()),
    };
    loop {
        let page: Vec<RawEntry> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(&start)
            .arg(&end)
            .arg("COUNT")
            .arg(PAGE)
            .query_async(&mut conn)
            .await
            .map_err(failed("reading dead letters"))?;
        let full = page.len() == PAGE;
        for (id, fields) in page {
            start = format!("({id}");
            let letter = letter(id, fields)?;
            if filter.matches(&letter) && !visit(letter) {
                return Ok(());
            }
        }
        if !full {
            return Ok(());
        }
    }
}

pub(crate) async fn list(
    bus: &RedisBus,
    filter: &DeadLetterFilter,
    limit: usize,
) -> Result<Vec<DeadLetter>, BusError> {
    let mut letters = Vec::new();
    scan(bus, filter, |letter| {
        letters.push(letter);
        letters.len() < limit
    })
    .await?;
    Ok(letters)
}

async fn matching_ids(bus: &RedisBus, filter: &DeadLetterFilter) -> Result<Vec<String>, BusError> {
    let mut ids = Vec::new();
    scan(bus, filter, |letter| {
        ids.push(letter.id);
        true
    })
    .await?;
    Ok(ids)
}

pub(crate) async fn replay(bus: &RedisBus, filter: &DeadLetterFilter) -> Result<u64, BusError> {
    let mut replayed = 0;
    for chunk in matching_ids(bus, filter).await?.chunks(PAGE) {
        let mut invocation = bus.shared.scripts.replay.prepare_invoke();
        invocation
            .arg(&bus.shared.options.key_prefix)
            .arg(bus.dead_key());
        for id in chunk {
            invocation.arg(id);
        }
        let count: u64 = invocation
            .invoke_async(&mut bus.conn())
            .await
            .map_err(failed("replaying dead letters"))?;
        replayed += count;
    }
    Ok(replayed)
}

pub(crate) async fn discard(bus: &RedisBus, filter: &DeadLetterFilter) -> Result<u64, BusError> {
    let mut discarded = 0;
    let key = bus.dead_key();
    for chunk in matching_ids(bus, filter).await?.chunks(PAGE) {
        let count: u64 = bus
            .conn()
            .xdel(&key, chunk)
            .await
            .map_err(failed("discarding dead letters"))?;
        discarded += count;
    }
    Ok(discarded)
}

pub(crate) async fn stats(bus: &RedisBus) -> Result<Vec<TopicStats>, BusError> {
    const ACTION: &str = "reading bus statistics";
    let mut conn = bus.conn();
    let mut dead: HashMap<(String, String), u64> = HashMap::new();
    scan(bus, &DeadLetterFilter::all(), |letter| {
        let key = (letter.message.topic.to_string(), letter.group.to_string());
        *dead.entry(key).or_default() += 1;
        true
    })
    .await?;
    let mut topics: Vec<String> = conn
        .smembers(bus.meta_key("topics"))
        .await
        .map_err(failed(ACTION))?;
    topics.sort();
    let mut out = Vec::new();
    for topic in topics {
        let groups: BTreeMap<String, u64> = conn
            .hgetall(bus.meta_key(&format!("groups:{topic}")))
            .await
            .map_err(failed(ACTION))?;
        if groups.is_empty() {
            let messages: u64 = conn
                .xlen(bus.stream_key(&topic))
                .await
                .map_err(failed(ACTION))?;
            out.push(TopicStats {
                topic,
                messages,
                depth: messages,
                ..TopicStats::default()
            });
            continue;
        }
        for (group, visibility_ms) in groups {
            let mut invocation = bus.shared.scripts.stats.prepare_invoke();
            invocation
                .arg(bus.stream_key(&topic))
                .arg(&group)
                .arg("")
                .arg(&topic)
                .arg(bus.dead_key())
                .arg(visibility_ms.saturating_add(1));
            let (messages, depth, in_flight, retrying): (u64, i64, i64, u64) = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(failed(ACTION))?;
            out.push(TopicStats {
                dead_letters: dead.remove(&(topic.clone(), group.clone())).unwrap_or(0),
                topic: topic.clone(),
                group: Some(group),
                messages,
                depth: u64::try_from(depth).unwrap_or(0),
                in_flight: u64::try_from(in_flight).unwrap_or(0),
                retrying,
            });
        }
    }
    Ok(out)
}
