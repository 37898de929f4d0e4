//! The bus conformance suite: the [`MessageBus`](mammoth_core::bus::MessageBus) contract as
//! code. Every bus driver (embedded SQLite, NATS JetStream, Redis Streams) runs it unchanged
//! through [`bus_conformance_tests!`](crate::bus_conformance_tests), one `#[tokio::test]` per
//! clause, each with a fresh bus from the driver's [`BusFactory`].
//!
//! Timings are short (visibility timeouts of a few hundred milliseconds, retry delays of tens)
//! so the suite runs in seconds; they are generous enough for a broker on the same machine.

mod delivery;
mod failure;
mod support;

use std::future::Future;

use mammoth_core::bus::MessageBus;

pub use delivery::*;
pub use failure::*;

/// Makes buses for the bus conformance suite: one fresh, isolated bus per scenario.
///
/// Scenarios run concurrently, so every bus must be isolated: its own file, or its own
/// stream/subject/key prefix on a shared broker.
pub trait BusFactory: Send + Sync + 'static {
    /// The driver's bus.
    type Bus: MessageBus + 'static;

    /// A fresh, empty bus. Panics (naming the backend and the reason) when the backend cannot
    /// be reached.
    fn fresh(&self) -> impl Future<Output = Self::Bus> + Send;

    /// Drops `bus` and opens the same data again; `None` when the driver keeps nothing across
    /// a reopen, which skips the durability scenario with a printed note.
    fn reopen(&self, bus: Self::Bus) -> impl Future<Output = Option<Self::Bus>> + Send;
}

/// Expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per bus
/// conformance scenario, named after it, each calling `bus::<name>(&factory)` with a factory
/// made by evaluating the expression anew.
///
/// ```text
/// mammoth_testkit::bus_conformance_tests!(SqliteBusFactory::new());
/// ```
#[macro_export]
macro_rules! bus_conformance_tests {
    (@scenarios ($($mode:tt)*)) => {
        $crate::bus_conformance_tests! {$($mode)* [
            a_published_message_reaches_a_subscriber_whole
            every_group_gets_every_message_and_a_group_shares_them
            a_republished_id_within_the_dedup_window_is_stored_once
            an_acked_message_is_not_delivered_again
            an_unacked_delivery_comes_back_after_the_visibility_timeout
            extending_a_lease_keeps_a_delivery_from_the_group
            a_nack_with_a_delay_redelivers_no_sooner_than_the_delay
            retries_follow_the_policy_then_the_message_is_dead_lettered
            a_handler_can_dead_letter_a_poison_message_at_once
            a_lease_expiring_on_the_last_attempt_is_dead_lettered_not_dropped
            a_stale_nack_changes_nothing
            replaying_a_dead_letter_delivers_it_again_to_its_group_only
            dead_letters_are_filtered_replayed_and_discarded_by_filter
            an_ordered_group_gets_one_message_per_key_at_a_time_in_order
            a_latest_group_skips_earlier_messages_and_an_earliest_group_sees_them
            stats_count_depth_in_flight_retrying_and_dead_letters
            invalid_input_is_rejected_and_stores_nothing
            concurrent_publishers_and_consumers_lose_nothing
            published_messages_and_dead_letters_survive_reopen
        ]}
    };
    (@names [$($name:ident)*]) => {
        &[$(stringify!($name)),*]
    };
    (@tests ($factory:expr) [$($name:ident)*]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let factory = $factory;
                $crate::bus::$name(&factory).await;
            }
        )*
    };
    ($factory:expr $(,)?) => {
        $crate::bus_conformance_tests!(@scenarios (@tests ($factory)));
    };
}

/// The names of every scenario [`bus_conformance_tests!`](crate::bus_conformance_tests)
/// generates, in order.
pub const BUS_SCENARIOS: &[&str] = bus_conformance_tests!(@scenarios (@names));

#[cfg(test)]
mod tests {
    use super::BUS_SCENARIOS;

    /// Every public scenario function is in the macro's list and the other way round, so no
    /// clause silently drops out of drivers' test runs.
    #[test]
    fn every_bus_scenario_function_is_in_the_macro() {
        let sources = [include_str!("delivery.rs"), include_str!("failure.rs")];
        let mut functions: Vec<&str> = sources
            .iter()
            .flat_map(|source| source.split("pub async fn ").skip(1))
            .map(|rest| rest.split(['<', '(']).next().unwrap_or_default())
            .collect();
        functions.sort_unstable();
        let mut listed = BUS_SCENARIOS.to_vec();
        listed.sort_unstable();
        assert_eq!(
            functions, listed,
            "bus scenario functions vs the macro list"
        );
    }
}
