//! [`BusPolicy`]: what `[message_bus]` asks of a bus, in the bus's own types — the
//! [`RetryPolicy`] consumers subscribe with and the [`TopicMap`] the outbox relay publishes by.
//! The binary and anything embedding mammoth build them here, so configuration drives them.

use std::collections::BTreeMap;

use mammoth_core::bus::{BusError, RetryPolicy, Topic, TopicMap};

use super::message_bus::{Backoff, MessageBusConfig};

/// Why `dead_letter.enabled: false` is refused (validation and [`MessageBusConfig::bus_policy`]
/// say the same thing).
pub(crate) const DEAD_LETTER_DISABLED: &str = "cannot be false: a message that fails its last attempt would have nowhere to go, and mammoth never drops a message silently";
/// The fix for [`DEAD_LETTER_DISABLED`].
pub(crate) const DEAD_LETTER_HELP: &str = "remove the key (dead letters can be listed, replayed and discarded with `mammoth dlq`), or raise `message_bus.retry.max_attempts` to retry longer";

/// The bus settings `[message_bus]` configures.
#[derive(Clone, Debug, PartialEq)]
pub struct BusPolicy {
    /// From `[message_bus.retry]`: give it to consumers in `SubscribeOptions::retry`.
    pub retry: RetryPolicy,
    /// From `[message_bus.topics]`: give it to the outbox relay.
    pub topics: TopicMap,
}

impl MessageBusConfig {
    /// The retry policy and topic map this section configures. `fixed` backoff is a factor of
    /// 1; a loaded configuration has been validated, so this fails only for one built in code.
    ///
    /// # Errors
    /// [`BusError::InvalidInput`] when `dead_letter.enabled` is false (see
    /// [`super::DeadLetterConfig`]) or a retry value is out of range;
    /// [`BusError::InvalidName`] for a topic name the bus cannot use.
    pub fn bus_policy(&self) -> Result<BusPolicy, BusError> {
        if !self.dead_letter.enabled {
            return Err(BusError::InvalidInput(format!(
                "message_bus.dead_letter.enabled {DEAD_LETTER_DISABLED}; {DEAD_LETTER_HELP}"
            )));
        }
        let retry = &self.retry;
        if retry.max_attempts == 0 || !(retry.multiplier.is_finite() && retry.multiplier >= 1.0) {
            return Err(BusError::InvalidInput(
                "message_bus.retry needs max_attempts of at least 1 and a multiplier of at least 1.0"
                    .to_owned(),
            ));
        }
        let topics = &self.topics;
        Ok(BusPolicy {
            retry: RetryPolicy {
                max_attempts: retry.max_attempts,
                base: retry.base_delay,
                factor: match retry.backoff {
                    Backoff::Fixed => 1.0,
                    _ => retry.multiplier,
                },
                cap: retry.max_delay,
                jitter: retry.jitter,
            },
            topics: TopicMap::from_names(&topics.default, &topics.categories, &topics.types)?,
        })
    }
}

/// Every topic name of `[message_bus.topics]` the bus would refuse, with its key path.
pub(crate) fn bad_topics(config: &MessageBusConfig) -> Vec<(Vec<String>, String)> {
    let topics = &config.topics;
    let default =
        (!topics.default.is_empty()).then(|| (vec!["default".to_owned()], &topics.default));
    fn rules<'a>(
        section: &str,
        map: &'a BTreeMap<String, String>,
    ) -> Vec<(Vec<String>, &'a String)> {
        map.iter()
            .map(|(from, to)| (vec![section.to_owned(), from.clone()], to))
            .collect()
    }
    default
        .into_iter()
        .chain(rules("categories", &topics.categories))
        .chain(rules("types", &topics.types))
        .filter_map(|(keys, name)| {
            Topic::new(name.as_str())
                .err()
                .map(|e| (keys, e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mammoth_core::bus::{BusError, RetryPolicy};

    use crate::{Backoff, MessageBusConfig};

    #[test]
    fn the_default_section_gives_the_seeds_retry_policy_and_everything_to_events() {
        let policy = MessageBusConfig::default().bus_policy().unwrap();
        assert_eq!(policy.retry, RetryPolicy::default());
        assert_eq!(policy.retry.bound(1), Duration::from_secs(2));
        let topics: Vec<&str> = policy.topics.topics().iter().map(|t| t.as_str()).collect();
        assert_eq!(topics, ["events"]);
    }

    #[test]
    fn fixed_backoff_is_a_factor_of_one_and_the_cap_is_max_delay() {
        let mut config = MessageBusConfig::default();
        config.retry.backoff = Backoff::Fixed;
        config.retry.max_attempts = 7;
        config.retry.base_delay = Duration::from_millis(250);
        config.retry.max_delay = Duration::from_secs(1);
        config.retry.jitter = false;
        let retry = config.bus_policy().unwrap().retry;
        assert_eq!((retry.max_attempts, retry.factor), (7, 1.0));
        assert_eq!(retry.delay(5), Duration::from_millis(250));
        assert_eq!(retry.cap, Duration::from_secs(1));
    }

    #[test]
    fn a_code_built_section_with_dead_letters_off_is_refused_not_silently_dropping() {
        let mut config = MessageBusConfig::default();
        config.dead_letter.enabled = false;
        let error = config.bus_policy().unwrap_err();
        assert!(matches!(error, BusError::InvalidInput(_)));
        assert!(
            error.to_string().contains("never drops a message"),
            "{error}"
        );
    }

    #[test]
    fn topic_rules_become_the_relays_map() {
        let mut config = MessageBusConfig::default();
        config.topics.default = String::new();
        config
            .topics
            .categories
            .insert("order".to_owned(), "orders".to_owned());
        config
            .topics
            .types
            .insert("PaymentFailed".to_owned(), "payments".to_owned());
        let topics = config.bus_policy().unwrap().topics;
        let names: Vec<&str> = topics.topics().iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["orders", "payments"]);
        config.topics.default = "no spaces allowed?".to_owned();
        assert!(matches!(
            config.bus_policy(),
            Err(BusError::InvalidName { .. })
        ));
    }
}
