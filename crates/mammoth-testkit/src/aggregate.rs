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
        Err(format!("it reads back as a different event from {}", json.data))
    }
}
