//! The typed layer: encoding domain events, upcaster chains (data changes, renames, splits),
//! and the errors that name the stored event when it cannot be read.

use mammoth_core::{
    CodecError, DomainEvent, EventRegistry, JsonEvent, Location, Metadata, RecordedEvent, StreamId,
    Upcasters, decode_recorded, encode_event,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// v3 of a customer's events: a full name split into parts, an address moved out of
/// `CustomerRegistered` into its own event, and `Renamed` renamed to `CustomerRenamed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum CustomerEvent {
    CustomerRegistered {
        given: String,
        family: String,
        vip: bool,
    },
    AddressChanged {
        city: String,
    },
    CustomerRenamed {
        given: String,
        family: String,
    },
    Deactivated,
}

impl DomainEvent for CustomerEvent {
    fn schema_version(event_type: &str) -> Option<u32> {
        match event_type {
            "CustomerRegistered" => Some(3),
            "AddressChanged" | "CustomerRenamed" | "Deactivated" => Some(1),
            _ => None,
        }
    }
}

/// v1 `{name, city}` -> v2 `{name, city, vip}` -> v3 `{given, family, vip}` + `AddressChanged`.
fn upcasters() -> Upcasters {
    Upcasters::new()
        .add("CustomerRegistered", 1, |mut data| {
            data["vip"] = json!(false);
            Ok(data)
        })
        .add_split("CustomerRegistered", 2, |data| {
            let name = data["name"].as_str().ok_or("name is not a string")?;
            let (given, family) = name.split_once(' ').unwrap_or((name, ""));
            let mut events = vec![JsonEvent::new(
                "CustomerRegistered",
                3,
                json!({ "given": given, "family": family, "vip": data["vip"] }),
            )];
            if let Some(city) = data.get("city").and_then(Value::as_str) {
                events.push(JsonEvent::new("AddressChanged", 1, json!({ "city": city })));
            }
            Ok(events)
        })
        .rename("Renamed", 1, "CustomerRenamed", 1)
}

fn recorded(event_type: &str, schema_version: u32, data: Value) -> RecordedEvent {
    RecordedEvent {
        id: Uuid::now_v7(),
        stream_id: StreamId::new("customer-7").unwrap(),
        version: 3,
        position: 42,
        event_type: event_type.to_owned(),
        schema_version,
        data: data.to_string(),
        metadata: Metadata::default(),
        recorded_at_micros: 0,
    }
}

#[test]
fn a_v1_event_is_chained_through_v2_to_v3_and_split() {
    let stored = recorded(
        "CustomerRegistered",
        1,
        json!({ "name": "Ada Lovelace", "city": "London" }),
    );
    let events: Vec<CustomerEvent> = decode_recorded(&stored, &upcasters()).unwrap();
    assert_eq!(
        events,
        vec![
            CustomerEvent::CustomerRegistered {
                given: "Ada".into(),
                family: "Lovelace".into(),
                vip: false
            },
            CustomerEvent::AddressChanged {
                city: "London".into()
            },
        ]
    );
}

#[test]
fn a_v2_event_starts_the_chain_at_its_own_version() {
    let stored = recorded(
        "CustomerRegistered",
        2,
        json!({ "name": "Grace Hopper", "vip": true }),
    );
    let events: Vec<CustomerEvent> = decode_recorded(&stored, &upcasters()).unwrap();
    assert_eq!(
        events,
        vec![CustomerEvent::CustomerRegistered {
            given: "Grace".into(),
            family: "Hopper".into(),
            vip: true
        }]
    );
}

#[test]
fn a_renamed_type_decodes_under_its_new_name() {
    let stored = recorded("Renamed", 1, json!({ "given": "A", "family": "B" }));
    let events: Vec<CustomerEvent> = decode_recorded(&stored, &upcasters()).unwrap();
    assert_eq!(
        events,
        vec![CustomerEvent::CustomerRenamed {
            given: "A".into(),
            family: "B".into()
        }]
    );
}

#[test]
fn a_unit_variant_round_trips_as_an_empty_object() {
    let json = encode_event(&CustomerEvent::Deactivated).unwrap();
    assert_eq!(json.data, json!({}));
    let stored = recorded("Deactivated", 1, json.data);
    let events: Vec<CustomerEvent> = decode_recorded(&stored, &upcasters()).unwrap();
    assert_eq!(events, vec![CustomerEvent::Deactivated]);
}

#[test]
fn an_unknown_future_version_is_an_error_not_a_guess() {
    let stored = recorded(
        "CustomerRegistered",
        4,
        json!({ "given": "A", "family": "B", "vip": false }),
    );
    let error = decode_recorded::<CustomerEvent>(&stored, &upcasters()).unwrap_err();
    assert!(
        matches!(
            &error,
            CodecError::FutureVersion {
                schema_version: 4,
                current: 3,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    for part in ["customer-7", "42", "CustomerRegistered", "v4", "v3"] {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

#[test]
fn an_old_version_without_an_upcaster_is_an_error_naming_the_gap() {
    let stored = recorded(
        "CustomerRegistered",
        2,
        json!({ "name": "A B", "vip": false }),
    );
    let error = decode_recorded::<CustomerEvent>(&stored, &Upcasters::new()).unwrap_err();
    assert!(
        matches!(
            &error,
            CodecError::MissingUpcaster {
                schema_version: 2,
                current: 3,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn data_that_does_not_fit_the_type_names_stream_position_type_and_version() {
    let stored = recorded("AddressChanged", 1, json!({ "town": "Paris" }));
    let error = decode_recorded::<CustomerEvent>(&stored, &upcasters()).unwrap_err();
    let CodecError::Decode {
        at,
        event_type,
        schema_version,
        reason,
    } = &error
    else {
        panic!("expected a decode error, got {error:?}");
    };
    assert_eq!(
        at,
        &Location {
            stream: "customer-7".into(),
            position: 42
        }
    );
    assert_eq!(
        (event_type.as_str(), *schema_version),
        ("AddressChanged", 1)
    );
    assert!(reason.contains("city"), "{reason}");
}

#[test]
fn an_unknown_type_is_an_error() {
    let stored = recorded("Teleported", 1, json!({}));
    let error = decode_recorded::<CustomerEvent>(&stored, &upcasters()).unwrap_err();
    assert!(matches!(error, CodecError::UnknownType { .. }), "{error:?}");
}

#[test]
fn a_failing_upcaster_reports_its_input() {
    let stored = recorded("CustomerRegistered", 2, json!({ "name": 7, "vip": false }));
    let error = decode_recorded::<CustomerEvent>(&stored, &upcasters()).unwrap_err();
    assert!(
        matches!(&error, CodecError::Upcast { schema_version: 2, reason, .. } if reason.contains("name")),
        "{error:?}"
    );
}

#[test]
fn upcasters_that_lead_back_to_each_other_stop_with_an_error() {
    let cycle = Upcasters::new()
        .rename("A", 1, "B", 1)
        .rename("B", 1, "A", 1);
    let error = cycle
        .upcast(JsonEvent::new("A", 1, json!({})), &Location::default())
        .unwrap_err();
    assert!(matches!(error, CodecError::Upcast { .. }), "{error:?}");
}

#[test]
#[should_panic(expected = "two upcasters")]
fn registering_two_upcasters_for_one_version_is_refused() {
    let _ = Upcasters::new().add("A", 1, Ok).add("A", 1, Ok);
}

#[test]
fn the_registry_decodes_any_registered_type_to_its_current_form() {
    let registry = EventRegistry::new(upcasters()).with::<CustomerEvent>();
    let stored = recorded("CustomerRegistered", 1, json!({ "name": "Ada Lovelace" }));
    let decoded = registry.decode(&stored).unwrap();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].schema_version, 3);
    assert_eq!(
        decoded[0].data,
        json!({ "given": "Ada", "family": "Lovelace", "vip": false })
    );
    assert!(decoded[0].typed.starts_with("CustomerRegistered"));
    assert!(matches!(
        registry.decode(&recorded("Teleported", 1, json!({}))),
        Err(CodecError::UnknownType { .. })
    ));
}

/// A model of a v1 event: whatever the name and city, the chain ends at v3 with the name's
/// parts, the vip default, and the city as a separate event when it was given.
fn name_part() -> impl Strategy<Value = String> {
    "[A-Za-z]{1,12}"
}

proptest! {
    #[test]
    fn every_v1_registration_upcasts_to_the_model(
        given in name_part(),
        family in proptest::option::of(name_part()),
        city in proptest::option::of("[A-Za-z ]{0,20}"),
    ) {
        let name = match &family { Some(family) => format!("{given} {family}"), None => given.clone() };
        let mut data = json!({ "name": name });
        if let Some(city) = &city { data["city"] = json!(city); }
        let events: Vec<CustomerEvent> =
            decode_recorded(&recorded("CustomerRegistered", 1, data), &upcasters()).unwrap();
        let mut expected = vec![CustomerEvent::CustomerRegistered {
            given: given.clone(),
            family: family.unwrap_or_default(),
            vip: false,
        }];
        if let Some(city) = city { expected.push(CustomerEvent::AddressChanged { city }); }
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn current_events_round_trip_through_encode_and_decode(
        given in name_part(), family in name_part(), vip in any::<bool>(),
    ) {
        let event = CustomerEvent::CustomerRegistered { given, family, vip };
        let json = encode_event(&event).unwrap();
        prop_assert_eq!(json.schema_version, 3);
        let stored = recorded(&json.event_type, json.schema_version, json.data);
        let back: Vec<CustomerEvent> = decode_recorded(&stored, &upcasters()).unwrap();
        prop_assert_eq!(back, vec![event]);
    }
}
