//! A toy saga for the saga runtime's tests (shared with `mammoth-sqlite`'s saga tests): a
//! trip books a hotel, then a flight, then a car; each completed booking records the
//! cancellation that undoes it. A failure event, a rejected command or the `hotel` deadline compensates.
//!
//! Also a fake bus service: it reads the command events from the log (as the outbox relay
//! would publish them) and answers each one once, as a real service would, through
//! `SagaCommandContext` (answers) or `report_rejection` (rejections).
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use mammoth_core::saga::{SAGA_STEPPED, Saga, SagaAction, SagaCommand, SagaInput, TOPIC_FIELD};
use mammoth_core::{EventFilter, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use mammoth_runtime::saga::{SagaCommandContext, report_rejection};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The toy saga. `deadline` is how long the hotel may take.
pub struct Trip {
    /// How long the hotel may take before the trip compensates.
    pub deadline: Duration,
}

/// What the trip saga remembers: the inputs it reacted to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TripState {
    /// The labels of the inputs, in order.
    pub seen: Vec<String>,
}

fn command(name: &str, trip: &str) -> SagaCommand {
    SagaCommand::new(name, "bookings", trip, json!({ "trip": trip }))
}

/// The trip id of a `trip-<id>` event.
fn trip_of(event: &RecordedEvent) -> Option<String> {
    event
        .stream_id
        .as_str()
        .strip_prefix("trip-")
        .map(str::to_owned)
}

impl Saga for Trip {
    const TYPE: &'static str = "trip";
    type State = TripState;

    fn filter(&self) -> EventFilter {
        EventFilter::all().with_types([
            "TripRequested",
            "HotelBooked",
            "FlightBooked",
            "CarBooked",
            "CarUnavailable",
            "HotelCancelled",
            "FlightCancelled",
            "CarCancelled",
        ])
    }

    fn starts(&self, event: &RecordedEvent) -> Option<String> {
        (event.event_type == "TripRequested")
            .then(|| trip_of(event))
            .flatten()
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        trip_of(event)
    }

    fn react(&self, state: &mut TripState, input: &SagaInput<'_>) -> Vec<SagaAction> {
        state.seen.push(input.label());
        let trip = "t";
        match input {
            SagaInput::Event(event) => match event.event_type.as_str() {
                "TripRequested" => vec![
                    SagaAction::Issue(command("BookHotel", trip)),
                    SagaAction::Schedule {
                        name: "hotel".to_owned(),
                        after: self.deadline,
                    },
                ],
                "HotelBooked" => vec![
                    SagaAction::Cancel {
                        name: "hotel".to_owned(),
                    },
                    SagaAction::Compensation(command("CancelHotel", trip)),
                    SagaAction::Issue(command("BookFlight", trip)),
                ],
                "FlightBooked" => vec![
                    SagaAction::Compensation(command("CancelFlight", trip)),
                    SagaAction::Issue(command("BookCar", trip)),
                ],
                "CarBooked" => vec![SagaAction::Complete],
                "CarUnavailable" => vec![SagaAction::Compensate {
                    reason: "no car".to_owned(),
                }],
                _ => Vec::new(),
            },
            SagaInput::DeadlineExpired { name } => vec![SagaAction::Compensate {
                reason: format!("deadline {name} expired"),
            }],
            SagaInput::CommandRejected { command, reason } => vec![SagaAction::Compensate {
                reason: format!("{command} rejected: {reason}"),
            }],
            _ => Vec::new(),
        }
    }
}

/// Appends `TripRequested` for trip `id`.
pub async fn request_trip<S: EventStore>(store: &S, id: &str) {
    let stream = StreamId::new(format!("trip-{id}")).unwrap();
    let event = NewEvent::json("TripRequested", json!({ "trip": id })).unwrap();
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();
}

/// How the fake service answers a command.
pub enum Answer {
    /// Write this event (caused by the command, to `trip-<id>` so `correlate` also works).
    Event(&'static str),
    /// Write this event with the `saga` field but to a stream `correlate` does not know.
    Tagged(&'static str),
    /// Report a rejection.
    Reject(&'static str),
    /// Do not answer (yet).
    Silent,
}

/// Every saga command event in the log, in order.
pub async fn commands<S: EventStore + Clone + 'static>(store: &S) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut from = 1;
    loop {
        let page = store
            .read_all(from, &EventFilter::all(), 500)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        all.extend(page);
    }
    all.into_iter()
        .filter(|event| {
            event.stream_id.is_reserved()
                && event.event_type != SAGA_STEPPED
                && event.metadata.extra.contains_key(TOPIC_FIELD)
        })
        .collect()
}

/// Answers every command not in `answered` as `answer` says; returns how many it answered.
pub async fn serve<S: EventStore + Clone + 'static>(
    store: &S,
    answered: &mut HashSet<String>,
    answer: impl Fn(&str) -> Answer,
) -> usize {
    let mut count = 0;
    for event in commands(store).await {
        if answered.contains(&event.id.to_string()) {
            continue;
        }
        let received = SagaCommandContext::from_event(&event, event.data_json().unwrap());
        let trip = received.saga.as_ref().unwrap().1.clone();
        let metadata = received.context.metadata();
        match answer(&received.name) {
            Answer::Event(event_type) | Answer::Tagged(event_type) => {
                let stream = match answer(&received.name) {
                    Answer::Tagged(_) => format!("svc-{trip}"),
                    _ => format!("trip-{trip}"),
                };
                let reply = NewEvent::json(event_type, json!({ "trip": trip }))
                    .unwrap()
                    .with_metadata(metadata);
                store
                    .append(
                        &StreamId::new(stream).unwrap(),
                        ExpectedVersion::Any,
                        vec![reply],
                    )
                    .await
                    .unwrap();
            }
            Answer::Reject(reason) => {
                report_rejection(store, &received, reason).await.unwrap();
            }
            Answer::Silent => continue,
        }
        answered.insert(event.id.to_string());
        count += 1;
    }
    count
}

/// The happy path: every booking succeeds.
pub fn happy(command: &str) -> Answer {
    match command {
        "BookHotel" => Answer::Event("HotelBooked"),
        "BookFlight" => Answer::Event("FlightBooked"),
        "BookCar" => Answer::Event("CarBooked"),
        "CancelHotel" => Answer::Event("HotelCancelled"),
        "CancelFlight" => Answer::Event("FlightCancelled"),
        "CancelCar" => Answer::Event("CarCancelled"),
        _ => Answer::Silent,
    }
}

/// The events of saga stream `$saga-trip-<id>`.
pub async fn saga_events<S: EventStore>(store: &S, id: &str) -> Vec<RecordedEvent> {
    let stream = mammoth_core::saga::saga_stream("trip", id).unwrap();
    store
        .read_stream(&stream, mammoth_core::Direction::Forward, None, 10_000)
        .await
        .unwrap()
}
