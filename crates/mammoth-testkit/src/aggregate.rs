//! Given/when/then tests for aggregates: `given` past events, `when` a command, `then` the
//! expected events or the expected rejection. Pure: no store, no runtime, no async.
//!
//! ```
//! use mammoth_core::{Aggregate, DomainEvent};
//! use mammoth_testkit::aggregate::AggregateTest;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum LightEvent { SwitchedOn, SwitchedOff }
//! impl DomainEvent for LightEvent {
//!     fn schema_version(event_type: &str) -> Option<u32> {
//!         matches!(event_type, "SwitchedOn" | "SwitchedOff").then_some(1)
//!     }
//! }
//!
//! #[derive(Debug, PartialEq)]
//! struct AlreadyOn;
//! impl std::fmt::Display for AlreadyOn {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("already on") }
//! }
//! impl std::error::Error for AlreadyOn {}
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Light { on: bool }
//! impl Aggregate for Light {
//!     const CATEGORY: &'static str = "light";
//!     type Command = ();
//!     type Event = LightEvent;
//!     type Error = AlreadyOn;
//!     fn decide(&self, _: &()) -> Result<Vec<LightEvent>, AlreadyOn> {
//!         if self.on { Err(AlreadyOn) } else { Ok(vec![LightEvent::SwitchedOn]) }
//!     }
//!     fn evolve(self, event: &LightEvent) -> Self {
//!         Light { on: matches!(event, LightEvent::SwitchedOn) }
//!     }
//! }
//!
//! AggregateTest::<Light>::given_no_events().when(()).then([LightEvent::SwitchedOn]);
//! AggregateTest::<Light>::given([LightEvent::SwitchedOn]).when(()).then_error(AlreadyOn);
//! ```

use std::fmt::{Debug, Write};

use mammoth_core::{Aggregate, decode_event, encode_event};

/// A test of one aggregate: the events it starts from.
#[must_use = "a test does nothing until `when(..).then(..)`"]
pub struct AggregateTest<A: Aggregate> {
    given: Vec<A::Event>,
}

/// A test with its command: ready for `then`.
#[must_use = "a test does nothing until `then(..)`"]
pub struct AggregateWhen<A: Aggregate> {
    given: Vec<A::Event>,
    command: A::Command,
}

impl<A: Aggregate> AggregateTest<A> {
    /// Starts from these past events (applied with `evolve` in order).
    pub fn given(events: impl IntoIterator<Item = A::Event>) -> Self {
        Self {
            given: events.into_iter().collect(),
        }
    }

    /// Starts from a new aggregate.
    pub fn given_no_events() -> Self {
        Self { given: Vec::new() }
    }

    /// The command to decide.
    pub fn when(self, command: A::Command) -> AggregateWhen<A> {
        AggregateWhen {
            given: self.given,
            command,
        }
    }
}

impl<A> AggregateWhen<A>
where
    A: Aggregate,
    A::Command: Debug,
    A::Event: Debug + PartialEq,
    A::Error: Debug,
{
    fn decide(&self) -> Result<Vec<A::Event>, A::Error> {
        let state = self.given.iter().fold(A::default(), A::evolve);
        state.decide(&self.command)
    }

    /// Asserts that `decide` returns exactly `expected`, in order, and that each of them
    /// survives a round trip through the codec (so it can be stored and read back).
    ///
    /// # Panics
    /// With the given events, the command, both event lists and the first difference.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.decide() {
            Ok(actual) if actual == expected => {
                for event in &actual {
                    if let Err(problem) = round_trip::<A>(event) {
                        self.fail(&format!("event {event:?} cannot be stored: {problem}"));
                    }
                }
            }
            Ok(actual) => {
                let mut report = format!(
                    "expected events:\n{}but decide returned:\n{}",
                    list(&expected),
                    list(&actual)
                );
                let first = expected.iter().zip(&actual).position(|(e, a)| e != a);
                let first = first.unwrap_or(expected.len().min(actual.len()));
                let _ = write!(
                    report,
                    "first difference at event {}:\n  expected: {}\n  actual:   {}",
                    first + 1,
                    expected
                        .get(first)
                        .map_or("(none)".to_owned(), |e| format!("{e:?}")),
                    actual
                        .get(first)
                        .map_or("(none)".to_owned(), |a| format!("{a:?}")),
                );
                self.fail(&report);
            }
            Err(error) => self.fail(&format!(
                "expected events:\n{}but decide rejected the command: {error:?}",
                list(&expected)
            )),
        }
    }

    /// Asserts that `decide` returns no events (the command is accepted as a no-op).
    ///
    /// # Panics
    /// As [`AggregateWhen::then`].
    #[track_caller]
    pub fn then_no_events(self) {
        self.then([]);
    }

    /// Asserts that `decide` rejects the command with `expected`.
    ///
    /// # Panics
    /// With the given events, the command, and what `decide` returned instead.
    #[track_caller]
    pub fn then_error(self, expected: A::Error)
    where
        A::Error: PartialEq,
    {
        match self.decide() {
            Err(actual) if actual == expected => {}
            Err(actual) => self.fail(&format!(
                "expected rejection: {expected:?}\nbut decide rejected with: {actual:?}"
            )),
            Ok(events) => self.fail(&format!(
                "expected rejection: {expected:?}\nbut decide returned events:\n{}",
                list(&events)
            )),
        }
    }

    /// Asserts that `decide` rejects the command with an error for which `check` is true.
    ///
    /// # Panics
    /// As [`AggregateWhen::then_error`].
    #[track_caller]
    pub fn then_error_matches(self, what: &str, check: impl FnOnce(&A::Error) -> bool) {
        match self.decide() {
            Err(actual) if check(&actual) => {}
            Err(actual) => self.fail(&format!(
                "expected a rejection that is {what}\nbut decide rejected with: {actual:?}"
            )),
            Ok(events) => self.fail(&format!(
                "expected a rejection that is {what}\nbut decide returned events:\n{}",
                list(&events)
            )),
        }
    }

    #[track_caller]
    fn fail(&self, report: &str) -> ! {
        panic!(
            "\naggregate test failed for {}\ngiven:\n{}when:\n  {:?}\n{report}\n",
            std::any::type_name::<A>(),
            list(&self.given),
            self.command
        );
    }
}

fn list<T: Debug>(items: &[T]) -> String {
    if items.is_empty() {
        return "  (no events)\n".to_owned();
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| format!("  {}. {item:?}\n", index + 1))
        .collect()
}

fn round_trip<A: Aggregate>(event: &A::Event) -> Result<(), String>
where
    A::Event: PartialEq,
{
    let json = encode_event(event).map_err(|error| error.to_string())?;
    let back: A::Event = decode_event(&json).map_err(|error| error.to_string())?;
    if &back == event {
        Ok(())
    } else {
        Err(format!(
            "it reads back as a different event from {}",
            json.data
        ))
    }
}

#[cfg(test)]
mod tests {
    use mammoth_core::{Aggregate, DomainEvent};
    use serde::{Deserialize, Serialize};

    use super::AggregateTest;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum TallyEvent {
        Counted {
            by: u32,
        },
        #[serde(rename = "Undeclared")]
        Forgotten,
    }

    impl DomainEvent for TallyEvent {
        fn schema_version(event_type: &str) -> Option<u32> {
            (event_type == "Counted").then_some(1)
        }
    }

    #[derive(Debug, PartialEq)]
    struct TooMany;

    impl std::fmt::Display for TooMany {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("too many")
        }
    }

    impl std::error::Error for TooMany {}

    #[derive(Default, Serialize, Deserialize)]
    struct Tally {
        total: u32,
    }

    impl Aggregate for Tally {
        const CATEGORY: &'static str = "tally";
        type Command = u32;
        type Event = TallyEvent;
        type Error = TooMany;

        fn decide(&self, by: &u32) -> Result<Vec<TallyEvent>, TooMany> {
            match by {
                0 => Ok(vec![TallyEvent::Forgotten]),
                by if self.total + by > 10 => Err(TooMany),
                by => Ok(vec![
                    TallyEvent::Counted { by: *by },
                    TallyEvent::Counted { by: 0 },
                ]),
            }
        }

        fn evolve(self, event: &TallyEvent) -> Self {
            match event {
                TallyEvent::Counted { by } => Tally {
                    total: self.total + by,
                },
                TallyEvent::Forgotten => self,
            }
        }
    }

    fn failure(test: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(test).expect_err("the test should fail");
        payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn a_wrong_event_list_shows_given_when_both_lists_and_the_first_difference() {
        let report = failure(|| {
            AggregateTest::<Tally>::given([TallyEvent::Counted { by: 4 }])
                .when(3)
                .then([TallyEvent::Counted { by: 3 }]);
        });
        for part in [
            "aggregate test failed for",
            "given:\n  1. Counted { by: 4 }",
            "when:\n  3",
            "expected events:\n  1. Counted { by: 3 }",
            "but decide returned:\n  1. Counted { by: 3 }\n  2. Counted { by: 0 }",
            "first difference at event 2:\n  expected: (none)\n  actual:   Counted { by: 0 }",
        ] {
            assert!(report.contains(part), "missing {part:?} in:\n{report}");
        }
    }

    #[test]
    fn an_unexpected_rejection_is_reported_as_such() {
        let report = failure(|| {
            AggregateTest::<Tally>::given([TallyEvent::Counted { by: 9 }])
                .when(5)
                .then([TallyEvent::Counted { by: 5 }]);
        });
        assert!(
            report.contains("but decide rejected the command: TooMany"),
            "{report}"
        );
    }

    #[test]
    fn events_are_expected_where_a_rejection_was() {
        let report = failure(|| {
            AggregateTest::<Tally>::given_no_events()
                .when(1)
                .then_error(TooMany);
        });
        assert!(report.contains("expected rejection: TooMany"), "{report}");
        assert!(
            report.contains("but decide returned events:\n  1. Counted { by: 1 }"),
            "{report}"
        );
    }

    #[test]
    fn an_event_the_codec_cannot_store_fails_the_test() {
        let report = failure(|| {
            AggregateTest::<Tally>::given_no_events()
                .when(0)
                .then([TallyEvent::Forgotten]);
        });
        assert!(report.contains("cannot be stored"), "{report}");
        assert!(
            report.contains("not declared in DomainEvent::schema_version"),
            "{report}"
        );
    }

    #[test]
    fn matching_outcomes_pass() {
        AggregateTest::<Tally>::given_no_events()
            .when(2)
            .then([TallyEvent::Counted { by: 2 }, TallyEvent::Counted { by: 0 }]);
        AggregateTest::<Tally>::given([TallyEvent::Counted { by: 10 }])
            .when(1)
            .then_error(TooMany);
        AggregateTest::<Tally>::given([TallyEvent::Counted { by: 10 }])
            .when(1)
            .then_error_matches("TooMany", |error| *error == TooMany);
    }
}
