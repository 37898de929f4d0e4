//! How the bus's names map onto JetStream names: streams, subjects, durable consumers and
//! key-value keys. Every name here is derived, so two buses with different stream names and
//! subject prefixes never share anything on one server.

use mammoth_core::bus::{BusError, ConsumerGroup, Topic};

/// Header holding the message id (the `Nats-Msg-Id` of a replay differs from it).
pub(crate) const HEADER_ID: &str = "Mammoth-Bus-Id";
/// Header holding the ordering key.
pub(crate) const HEADER_KEY: &str = "Mammoth-Bus-Key";
/// Header naming the only group a replayed message is for.
pub(crate) const HEADER_REPLAY_GROUP: &str = "Mammoth-Bus-Replay-Group";
/// Headers with these prefixes belong to the broker or this driver, not to the message.
pub(crate) const RESERVED_PREFIXES: [&str; 2] = ["Nats-", "Mammoth-Bus-"];

/// The default dead-letter destination (`[message_bus.dead_letter] destination`): the
/// dead-letter stream is then `{stream}_DLQ` over `{prefix}_dlq.>`.
pub(crate) const DEFAULT_DEAD_LETTER: &str = "dead_letter";

/// The names one bus uses.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) dead_stream: String,
    pub(crate) dead_prefix: String,
    pub(crate) relay_bucket: String,
    pub(crate) relay_subject: String,
    pub(crate) failure_bucket: String,
    pub(crate) failure_subject: String,
}

impl Names {
    /// Checks `stream`, `prefix` and the dead-letter destination `dead_letter` and derives
    /// the rest. The default destination keeps the dead-letter stream `{stream}_DLQ` over
    /// `{prefix}_dlq.>`; destination `D` makes it `{stream}_DLQ_D` over `{prefix}_dlq_D.>`
    /// (inside the bus's own names, so two buses on one server never share dead letters).
    pub(crate) fn new(stream: &str, prefix: &str, dead_letter: &str) -> Result<Self, BusError> {
        if !token_ok(stream) {
            return Err(BusError::InvalidInput(format!(
                "NATS stream name {stream:?}: use 1 to 64 ASCII letters, digits, '_' and '-', such as \"MAMMOTH\""
            )));
        }
        if !token_ok(prefix) {
            return Err(BusError::InvalidInput(format!(
                "NATS subject prefix {prefix:?}: use one subject token of 1 to 64 ASCII letters, digits, '_' and '-', such as \"mammoth\""
            )));
        }
        let (dead_stream, dead_prefix) = if dead_letter == DEFAULT_DEAD_LETTER {
            (format!("{stream}_DLQ"), format!("{prefix}_dlq"))
        } else if token_ok(dead_letter) {
            (
                format!("{stream}_DLQ_{dead_letter}"),
                format!("{prefix}_dlq_{dead_letter}"),
            )
        } else {
            return Err(BusError::InvalidInput(format!(
                "NATS dead-letter destination {dead_letter:?}: use 1 to 64 ASCII letters, digits, '_' and '-' (it names the stream {stream}_DLQ_<destination>), such as \"orders_failed\""
            )));
        };
        Ok(Self {
            stream: stream.to_owned(),
            prefix: prefix.to_owned(),
            dead_stream,
            dead_prefix,
            relay_bucket: format!("{stream}_RELAY"),
            relay_subject: format!("{prefix}_relay"),
            failure_bucket: format!("{stream}_FAILURES"),
            failure_subject: format!("{prefix}_failures"),
        })
    }

    /// The subject messages of `topic` are published on.
    pub(crate) fn subject(&self, topic: &Topic) -> String {
        format!("{}.{}", self.prefix, topic.as_str())
    }

    /// The topic of a message subject, if it is one of this bus's.
    pub(crate) fn topic_of(&self, subject: &str) -> Option<Topic> {
        let rest = subject.strip_prefix(&self.prefix)?.strip_prefix('.')?;
        Topic::new(rest).ok()
    }

    /// The dead-letter subject of `group`'s letters from `topic`.
    pub(crate) fn dead_subject(&self, topic: &Topic, group: &ConsumerGroup) -> String {
        format!("{}.{}.{}", self.dead_prefix, group.as_str(), topic.as_str())
    }

    /// The topic and group of a dead-letter subject.
    pub(crate) fn dead_parts(&self, subject: &str) -> Option<(Topic, ConsumerGroup)> {
        let rest = subject.strip_prefix(&self.dead_prefix)?.strip_prefix('.')?;
        let (group, topic) = rest.split_once('.')?;
        Some((Topic::new(topic).ok()?, ConsumerGroup::new(group).ok()?))
    }
}

/// 1 to 64 ASCII letters, digits, `_` and `-`: usable in a stream name and as a subject token.
fn token_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The durable consumer of `group` on `topic`: `group=topic` with the topic's dots as `=`
/// (neither name may contain `=`, and a durable name may not contain `.`), so the pair can be
/// read back from the name.
pub(crate) fn consumer_name(topic: &Topic, group: &ConsumerGroup) -> String {
    format!("{}={}", group.as_str(), topic.as_str().replace('.', "="))
}

/// The topic and group a durable consumer name stands for.
pub(crate) fn consumer_parts(name: &str) -> Option<(Topic, ConsumerGroup)> {
    let (group, topic) = name.split_once('=')?;
    Some((
        Topic::new(topic.replace('=', ".")).ok()?,
        ConsumerGroup::new(group).ok()?,
    ))
}

/// The bucket key of the failure record of stream sequence `sequence` in `consumer` (one
/// subject token: `consumer:sequence`).
pub(crate) fn failure_key(consumer: &str, sequence: u64) -> String {
    format!("{consumer}:{sequence}")
}

/// A relay name as a key-value key: kept when it is already a valid key, else hex-encoded
/// (with an `x` first, so the two forms cannot collide).
pub(crate) fn relay_key(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with('x')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if plain {
        name.to_owned()
    } else {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x{hex}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_name_gives_back_its_topic_and_group() {
        let topic = Topic::new("orders.eu-west_1").expect("topic");
        let group = ConsumerGroup::new("billing-2").expect("group");
        let name = consumer_name(&topic, &group);
        assert!(
            !name.contains('.'),
            "durable names may not hold dots: {name}"
        );
        assert_eq!(consumer_parts(&name), Some((topic, group)));
    }

    #[test]
    fn dead_letter_subjects_give_back_their_topic_and_group() {
        let names = Names::new("S1", "p1", DEFAULT_DEAD_LETTER).expect("names");
        let topic = Topic::new("a.b").expect("topic");
        let group = ConsumerGroup::new("g").expect("group");
        let subject = names.dead_subject(&topic, &group);
        assert_eq!(names.dead_parts(&subject), Some((topic.clone(), group)));
        assert_eq!(names.topic_of(&names.subject(&topic)), Some(topic));
    }

    #[test]
    fn relay_keys_never_collide_between_plain_and_encoded_names() {
        assert_eq!(relay_key("outbox"), "outbox");
        assert_ne!(relay_key("x6f"), relay_key("o"));
        assert_eq!(relay_key("a b"), "x612062");
    }

    #[test]
    fn bad_stream_names_and_prefixes_are_rejected_with_the_fix() {
        let error = Names::new("a.b", "p", DEFAULT_DEAD_LETTER).expect_err("dot in stream");
        assert!(error.to_string().contains("such as"), "{error}");
        assert!(Names::new("S", "a.b", DEFAULT_DEAD_LETTER).is_err());
        assert!(Names::new("", "p", DEFAULT_DEAD_LETTER).is_err());
    }

    #[test]
    fn the_default_dead_letter_destination_keeps_the_dlq_stream_name() {
        let names = Names::new("S1", "p1", DEFAULT_DEAD_LETTER).expect("names");
        assert_eq!(names.dead_stream, "S1_DLQ");
        assert_eq!(names.dead_prefix, "p1_dlq");
    }

    #[test]
    fn a_dead_letter_destination_names_its_own_stream_and_subjects() {
        let names = Names::new("S1", "p1", "orders_failed").expect("names");
        assert_eq!(names.dead_stream, "S1_DLQ_orders_failed");
        assert_eq!(names.dead_prefix, "p1_dlq_orders_failed");
        let topic = Topic::new("orders").expect("topic");
        let group = ConsumerGroup::new("g").expect("group");
        let subject = names.dead_subject(&topic, &group);
        assert_eq!(names.dead_parts(&subject), Some((topic.clone(), group)));
        assert_eq!(
            names.topic_of(&subject),
            None,
            "a dead letter is not a message of the bus"
        );
        let default = Names::new("S1", "p1", DEFAULT_DEAD_LETTER).expect("names");
        assert_eq!(
            default.dead_parts(&subject),
            None,
            "nor the default queue's"
        );
    }

    #[test]
    fn a_dead_letter_destination_that_cannot_name_a_stream_is_refused_with_the_fix() {
        for bad in ["", "a.b", "a b", "x*"] {
            let error = Names::new("S1", "p1", bad).expect_err("bad destination");
            assert!(error.to_string().contains("such as"), "{error}");
        }
    }
}
