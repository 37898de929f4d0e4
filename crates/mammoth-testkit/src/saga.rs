//! Given/when/then tests for sagas: `given` past inputs, `when` one more, `then` the commands
//! it issued, its status and its state. Pure: the same step function the runner uses
//! ([`SagaInstance::step`]), no store, no runtime, no async. Compensation order shows in the
//! commands each answer releases.
//!
//! ```
//! use mammoth_core::saga::{Saga, SagaAction, SagaCommand, SagaInput, SagaStatus};
//! use mammoth_core::{EventFilter, RecordedEvent};
//! use mammoth_testkit::saga::{SagaTest, event};
//!
//! struct Trip;
//! impl Saga for Trip {
//!     const TYPE: &'static str = "trip";
//!     type State = ();
//!     fn filter(&self) -> EventFilter { EventFilter::all() }
//!     fn starts(&self, event: &RecordedEvent) -> Option<String> {
//!         (event.event_type == "TripBooked").then(|| "t1".to_owned())
//!     }
//!     fn react(&self, _: &mut (), input: &SagaInput<'_>) -> Vec<SagaAction> {
//!         match input {
//!             SagaInput::Event(e) if e.event_type == "TripBooked" => vec![
//!                 SagaAction::Issue(SagaCommand::new("BookHotel", "hotels", "t1", serde_json::json!({}))),
//!                 SagaAction::Compensation(SagaCommand::new("CancelHotel", "hotels", "t1", serde_json::json!({}))),
//!             ],
//!             _ => vec![SagaAction::Compensate { reason: "no flight".into() }],
//!         }
//!     }
//! }
//!
//! SagaTest::new(Trip)
//!     .given([event("TripBooked", serde_json::json!({}))])
//!     .when(event("FlightFull", serde_json::json!({})))
//!     .then_commands(["CancelHotel"])
//!     .then_status(SagaStatus::Compensating)
//!     .when(mammoth_testkit::saga::reply("HotelCancelled", serde_json::json!({})))
//!     .then_commands([])
//!     .then_status(SagaStatus::Compensated);
//! ```

use std::fmt::Debug;

use mammoth_core::saga::{
    COMMAND_REJECTED, CommandRejected, IssuedCommand, Saga, SagaInput, SagaInstance, SagaStatus,
};
use mammoth_core::{Metadata, RecordedEvent, StreamId};
use serde_json::Value;
use uuid::Uuid;

/// An input for a [`SagaTest`]: build one with [`event`], [`reply`], [`rejected`] or
/// [`deadline`].
#[derive(Clone, Debug)]
pub struct TestInput(Kind);

#[derive(Clone, Debug)]
enum Kind {
    Event { event_type: String, data: Value },
    Reply { event_type: String, data: Value },
    Rejected { command: String, reason: String },
    Deadline { name: String },
}

/// An event of the global log (no causation).
pub fn event(event_type: &str, data: Value) -> TestInput {
    TestInput(Kind::Event {
        event_type: event_type.to_owned(),
        data,
    })
}

/// An event caused by the last command the saga issued (the answer a service writes).
pub fn reply(event_type: &str, data: Value) -> TestInput {
    TestInput(Kind::Reply {
        event_type: event_type.to_owned(),
        data,
    })
}

/// A service's rejection of the last issued command named `command`.
pub fn rejected(command: &str, reason: &str) -> TestInput {
    TestInput(Kind::Rejected {
        command: command.to_owned(),
        reason: reason.to_owned(),
    })
}

/// The deadline `name` expiring.
pub fn deadline(name: &str) -> TestInput {
    TestInput(Kind::Deadline {
        name: name.to_owned(),
    })
}

/// A saga test: the saga, where it stands, and what the last `when` did. Each `then_..`
/// returns the test, so checks and further inputs chain.
pub struct SagaTest<S: Saga> {
    saga: S,
    instance: Option<SagaInstance<S::State>>,
    issued: Vec<IssuedCommand>,
    last: Vec<IssuedCommand>,
    position: u64,
}

impl<S: Saga> SagaTest<S>
where
    S::State: Debug,
{
    /// A test of `saga`, not started.
    pub fn new(saga: S) -> Self {
        Self {
            saga,
            instance: None,
            issued: Vec::new(),
            last: Vec::new(),
            position: 0,
        }
    }

    /// Feeds these inputs in order (their commands are not checked).
    pub fn given(mut self, inputs: impl IntoIterator<Item = TestInput>) -> Self {
        for input in inputs {
            self.feed(input);
        }
        self.last.clear();
        self
    }

    /// Feeds one input; the `then_..` checks look at what it did.
    pub fn when(mut self, input: TestInput) -> Self {
        self.last.clear();
        self.feed(input);
        self
    }

    /// Checks the names of the commands the last `when` issued, in order.
    pub fn then_commands<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        let expected: Vec<&str> = names.into_iter().collect();
        let actual: Vec<&str> = self.last.iter().map(|c| c.command.name.as_str()).collect();
        assert_eq!(actual, expected, "commands issued by the last input");
        self
    }

    /// Checks the commands the last `when` issued: name, topic, key and payload.
    pub fn then_issued(
        self,
        expected: impl IntoIterator<Item = mammoth_core::saga::SagaCommand>,
    ) -> Self {
        let expected: Vec<_> = expected.into_iter().collect();
        let actual: Vec<_> = self.last.iter().map(|c| c.command.clone()).collect();
        assert_eq!(actual, expected, "commands issued by the last input");
        self
    }

    /// Checks the saga's status.
    pub fn then_status(self, status: SagaStatus) -> Self {
        assert_eq!(
            self.instance().status,
            status,
            "saga status (reason: {:?})",
            self.instance().reason
        );
        self
    }

    /// Checks the reason the saga is compensating, compensated or failed.
    pub fn then_reason(self, reason: &str) -> Self {
        assert_eq!(
            self.instance().reason.as_deref(),
            Some(reason),
            "saga reason"
        );
        self
    }

    /// Checks the saga's own state.
    pub fn then_state(self, state: &S::State) -> Self
    where
        S::State: PartialEq,
    {
        assert_eq!(&self.instance().state, state, "saga state");
        self
    }

    /// Checks the names of the deadlines pending, in scheduling order.
    pub fn then_deadlines<'a>(self, names: impl IntoIterator<Item = &'a str>) -> Self {
        let expected: Vec<&str> = names.into_iter().collect();
        let actual: Vec<&str> = self
            .instance()
            .timers
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(actual, expected, "pending deadlines");
        self
    }

    /// Every command issued since the test began, in order.
    pub fn all_commands(&self) -> Vec<&str> {
        self.issued
            .iter()
            .map(|c| c.command.name.as_str())
            .collect()
    }

    /// The saga as it stands (panics before the first input started it).
    pub fn instance(&self) -> &SagaInstance<S::State> {
        self.instance
            .as_ref()
            .expect("the saga has not started: no input so far returned Some from `starts`")
    }

    fn feed(&mut self, input: TestInput) {
        self.position += 1;
        let cause = |name: Option<&str>| {
            self.issued
                .iter()
                .rev()
                .find(|c| name.is_none_or(|name| c.command.name == name))
                .map(|c| c.id)
        };
        let (event_type, data, causation) = match &input.0 {
            Kind::Event { event_type, data } => (event_type.clone(), data.clone(), None),
            Kind::Reply { event_type, data } => (event_type.clone(), data.clone(), cause(None)),
            Kind::Rejected { command, reason } => {
                let report = CommandRejected {
                    command_id: cause(Some(command)).unwrap_or_default(),
                    command: command.clone(),
                    reason: reason.clone(),
                };
                let data = serde_json::to_value(&report).expect("a rejection serializes");
                (COMMAND_REJECTED.to_owned(), data, cause(Some(command)))
            }
            Kind::Deadline { .. } => (String::new(), Value::Null, None),
        };
        let recorded = RecordedEvent {
            id: Uuid::now_v7(),
            stream_id: StreamId::new("test-1").expect("a valid stream id"),
            version: self.position,
            position: self.position,
            event_type,
            schema_version: 1,
            data: data.to_string(),
            metadata: Metadata {
                causation_id: causation,
                ..Metadata::default()
            },
            recorded_at_micros: i64::try_from(self.position).unwrap_or(0),
        };
        let instance = match self.instance.take() {
            Some(instance) => instance,
            None => {
                let id = self.saga.starts(&recorded).unwrap_or_else(|| {
                    panic!(
                        "the first input ({}) does not start the saga",
                        recorded.event_type
                    )
                });
                SagaInstance::new(S::TYPE, &id).expect("a valid saga id")
            }
        };
        let step = match &input.0 {
            Kind::Event { .. } | Kind::Reply { .. } => {
                instance.step(&self.saga, &SagaInput::Event(&recorded), Some(&recorded), 1)
            }
            Kind::Rejected { command, reason } => instance.step(
                &self.saga,
                &SagaInput::CommandRejected { command, reason },
                Some(&recorded),
                1,
            ),
            Kind::Deadline { name } => {
                instance.step(&self.saga, &SagaInput::DeadlineExpired { name }, None, 1)
            }
        }
        .expect("the saga state serializes");
        match step {
            Some(step) => {
                let mut next = step.instance;
                next.version += 1 + step.commands.len() as u64;
                self.issued.extend(step.commands.iter().cloned());
                self.last = step.commands;
                self.instance = Some(next);
            }
            None => self.instance = Some(instance),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mammoth_core::saga::{Saga, SagaAction, SagaCommand, SagaInput, SagaStatus};
    use mammoth_core::{EventFilter, RecordedEvent};
    use serde_json::json;

    use super::{SagaTest, deadline, event, rejected, reply};

    /// Steps A, B, C; each answered step records its undo; `Broken` compensates.
    struct Steps;

    fn cmd(name: &str) -> SagaCommand {
        SagaCommand::new(name, "work", "k", json!({}))
    }

    impl Saga for Steps {
        const TYPE: &'static str = "steps";
        type State = u32;
        fn filter(&self) -> EventFilter {
            EventFilter::all()
        }
        fn starts(&self, event: &RecordedEvent) -> Option<String> {
            (event.event_type == "Go").then(|| "1".to_owned())
        }
        fn react(&self, done: &mut u32, input: &SagaInput<'_>) -> Vec<SagaAction> {
            match input {
                SagaInput::Event(e) if e.event_type == "Go" => vec![
                    SagaAction::Issue(cmd("DoA")),
                    SagaAction::Schedule {
                        name: "slow".to_owned(),
                        after: Duration::from_secs(5),
                    },
                ],
                SagaInput::Event(e) if e.event_type == "Done" => {
                    *done += 1;
                    let undo = ["UndoA", "UndoB", "UndoC"][(*done - 1) as usize % 3];
                    let mut actions = vec![SagaAction::Compensation(cmd(undo))];
                    match *done {
                        1 => actions.push(SagaAction::Issue(cmd("DoB"))),
                        2 => actions.push(SagaAction::Issue(cmd("DoC"))),
                        _ => actions.push(SagaAction::Complete),
                    }
                    actions
                }
                SagaInput::Event(_) => vec![SagaAction::Compensate {
                    reason: "broken".to_owned(),
                }],
                SagaInput::CommandRejected { command, reason } => vec![SagaAction::Compensate {
                    reason: format!("{command}: {reason}"),
                }],
                _ => vec![SagaAction::Compensate {
                    reason: "too slow".to_owned(),
                }],
            }
        }
    }

    #[test]
    fn compensations_are_issued_in_reverse_order_one_per_answer() {
        SagaTest::new(Steps)
            .given([
                event("Go", json!({})),
                reply("Done", json!({})),
                reply("Done", json!({})),
            ])
            .when(event("Broken", json!({})))
            .then_commands(["UndoB"])
            .then_status(SagaStatus::Compensating)
            .when(event("Unrelated", json!({})))
            .then_commands([])
            .when(reply("UndoneB", json!({})))
            .then_commands(["UndoA"])
            .when(reply("UndoneA", json!({})))
            .then_commands([])
            .then_status(SagaStatus::Compensated)
            .then_reason("broken");
    }

    #[test]
    fn a_rejection_and_a_deadline_reach_react() {
        SagaTest::new(Steps)
            .given([event("Go", json!({})), reply("Done", json!({}))])
            .when(rejected("DoB", "no capacity"))
            .then_commands(["UndoA"])
            .then_reason("DoB: no capacity");
        SagaTest::new(Steps)
            .given([event("Go", json!({}))])
            .then_deadlines(["slow"])
            .when(deadline("slow"))
            .then_commands([])
            .then_status(SagaStatus::Compensated)
            .then_reason("too slow")
            .then_deadlines([]);
    }

    #[test]
    fn completing_drops_the_compensations_and_the_state_is_kept() {
        let test = SagaTest::new(Steps)
            .given([
                event("Go", json!({})),
                reply("Done", json!({})),
                reply("Done", json!({})),
            ])
            .when(reply("Done", json!({})))
            .then_status(SagaStatus::Completed)
            .then_state(&3);
        assert_eq!(test.all_commands(), ["DoA", "DoB", "DoC"]);
        assert!(test.instance().compensations.is_empty());
    }

    #[test]
    #[should_panic(expected = "commands issued by the last input")]
    fn a_wrong_expectation_fails_the_test() {
        SagaTest::new(Steps)
            .when(event("Go", json!({})))
            .then_commands(["DoB"]);
    }

    /// Records `Undo<n>` for each answered step `Do<n>`; anything else compensates.
    struct Chain;

    impl Saga for Chain {
        const TYPE: &'static str = "chain";
        type State = u32;
        fn filter(&self) -> EventFilter {
            EventFilter::all()
        }
        fn starts(&self, event: &RecordedEvent) -> Option<String> {
            (event.event_type == "Go").then(|| "1".to_owned())
        }
        fn react(&self, done: &mut u32, input: &SagaInput<'_>) -> Vec<SagaAction> {
            match input {
                SagaInput::Event(e) if e.event_type == "Go" => vec![SagaAction::Issue(cmd("Do1"))],
                SagaInput::Event(e) if e.event_type == "Done" => {
                    *done += 1;
                    vec![
                        SagaAction::Compensation(cmd(&format!("Undo{done}"))),
                        SagaAction::Issue(cmd(&format!("Do{}", *done + 1))),
                    ]
                }
                _ => vec![SagaAction::Compensate {
                    reason: "stop".to_owned(),
                }],
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_number_of_completed_steps_is_undone_in_reverse_order(steps in 0u32..12) {
            let mut test = SagaTest::new(Chain).given([event("Go", json!({}))]);
            for _ in 0..steps {
                test = test.when(reply("Done", json!({})));
            }
            test = test.when(event("Stop", json!({})));
            for _ in 0..steps {
                test = test.when(reply("Undone", json!({})));
            }
            // Do1..Do<steps+1> came first; everything after them is compensation.
            let commands = test.all_commands();
            let undone = steps as usize + 1;
            let expected: Vec<String> = (1..=steps).rev().map(|n| format!("Undo{n}")).collect();
            proptest::prop_assert_eq!(&commands[undone..], expected.as_slice());
            proptest::prop_assert_eq!(test.instance().status, SagaStatus::Compensated);
        }
    }
}
