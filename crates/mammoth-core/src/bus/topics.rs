//! [`TopicMap`]: which topic the outbox relay publishes each committed event to, and
//! [`event_message`]: the message it publishes.

use std::collections::BTreeMap;

use crate::RecordedEvent;

use super::{BusError, OutgoingMessage, Topic};

/// Header carrying the event type.
pub const HEADER_EVENT_TYPE: &str = "mammoth-event-type";
/// Header carrying the stream id.
pub const HEADER_STREAM: &str = "mammoth-stream";
/// Header carrying the global position.
pub const HEADER_POSITION: &str = "mammoth-position";

/// Maps events to topics: by event type first, then by stream category, then the default.
/// An event no rule names and with no default is not published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopicMap {
    default: Option<Topic>,
    categories: BTreeMap<String, Topic>,
    types: BTreeMap<String, Topic>,
}

impl TopicMap {
    /// Every event to `topic` (the seed publishes everything to `events`).
    pub fn all_to(topic: Topic) -> Self {
        Self {
            default: Some(topic),
            ..Self::default()
        }
    }

    /// Builds a map from names, as configuration gives them; an empty default publishes only
    /// the events a rule names.
    ///
    /// # Errors
    /// [`BusError::InvalidName`] for a topic name the bus cannot use.
    pub fn from_names<'a>(
        default: &str,
        categories: impl IntoIterator<Item = (&'a String, &'a String)>,
        types: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, BusError> {
        let convert = |rules: &mut dyn Iterator<Item = (&'a String, &'a String)>| {
            rules
                .map(|(from, to)| Ok((from.clone(), Topic::new(to.as_str())?)))
                .collect::<Result<BTreeMap<_, _>, BusError>>()
        };
        Ok(Self {
            default: (!default.is_empty())
                .then(|| Topic::new(default))
                .transpose()?,
            categories: convert(&mut categories.into_iter())?,
            types: convert(&mut types.into_iter())?,
        })
    }

    /// Sends events of stream category `category` to `topic`.
    pub fn category(mut self, category: impl Into<String>, topic: Topic) -> Self {
        self.categories.insert(category.into(), topic);
        self
    }

    /// Sends events of type `event_type` to `topic` (this wins over a category rule).
    pub fn event_type(mut self, event_type: impl Into<String>, topic: Topic) -> Self {
        self.types.insert(event_type.into(), topic);
        self
    }

    /// The topic for `event`, or `None` when it is not published.
    pub fn topic_for(&self, event: &RecordedEvent) -> Option<&Topic> {
        self.types
            .get(&event.event_type)
            .or_else(|| self.categories.get(event.stream_id.category()))
            .or(self.default.as_ref())
    }

    /// Every topic the map can publish to.
    pub fn topics(&self) -> Vec<&Topic> {
        let mut topics: Vec<&Topic> = self
            .default
            .iter()
            .chain(self.categories.values())
            .chain(self.types.values())
            .collect();
        topics.sort_unstable();
        topics.dedup();
        topics
    }
}

/// The message the outbox relay publishes for `event`: the event id as message id (brokers
/// de-duplicate re-publishes by it), the stream id as ordering key, the whole recorded event as
/// JSON payload, and type, stream and position as headers.
pub fn event_message(event: &RecordedEvent) -> OutgoingMessage {
    // A RecordedEvent holds only strings, numbers and maps, so serializing it cannot fail; an
    // empty payload would be the visible sign if it ever did.
    let payload = serde_json::to_vec(event).unwrap_or_default();
    OutgoingMessage::with_id(event.id, payload)
        .keyed(event.stream_id.as_str())
        .header(HEADER_EVENT_TYPE, event.event_type.as_str())
        .header(HEADER_STREAM, event.stream_id.as_str())
        .header(HEADER_POSITION, event.position.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::{HEADER_POSITION, TopicMap, event_message};
    use crate::bus::Topic;
    use crate::{Metadata, RecordedEvent, StreamId};

    fn event(stream: &str, event_type: &str) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::now_v7(),
            stream_id: StreamId::new(stream).unwrap(),
            version: 1,
            position: 7,
            event_type: event_type.to_owned(),
            schema_version: 1,
            data: "{}".to_owned(),
            metadata: Metadata::default(),
            recorded_at_micros: 1,
        }
    }

    #[test]
    fn a_type_rule_wins_over_a_category_rule_which_wins_over_the_default() {
        let topic = |name: &str| Topic::new(name).unwrap();
        let map = TopicMap::all_to(topic("events"))
            .category("order", topic("orders"))
            .event_type("PaymentFailed", topic("payments"));
        assert_eq!(
            map.topic_for(&event("order-1", "OrderCreated")),
            Some(&topic("orders"))
        );
        assert_eq!(
            map.topic_for(&event("order-1", "PaymentFailed")),
            Some(&topic("payments"))
        );
        assert_eq!(
            map.topic_for(&event("user-1", "UserJoined")),
            Some(&topic("events"))
        );
        assert_eq!(map.topics().len(), 3);
    }

    #[test]
    fn without_a_default_only_named_events_are_published() {
        let categories = BTreeMap::from([("order".to_owned(), "orders".to_owned())]);
        let map = TopicMap::from_names("", &categories, &BTreeMap::new()).unwrap();
        assert!(map.topic_for(&event("user-1", "UserJoined")).is_none());
        assert!(map.topic_for(&event("order-1", "OrderCreated")).is_some());
        let bad = BTreeMap::from([("order".to_owned(), "bad topic".to_owned())]);
        assert!(TopicMap::from_names("", &bad, &BTreeMap::new()).is_err());
    }

    #[test]
    fn the_relayed_message_carries_the_event_id_key_and_whole_event() {
        let event = event("order-9", "OrderCreated");
        let message = event_message(&event);
        assert_eq!(message.id, event.id);
        assert_eq!(message.key.as_deref(), Some("order-9"));
        assert_eq!(message.headers[HEADER_POSITION], "7");
        let back: RecordedEvent = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(back, event);
    }
}
