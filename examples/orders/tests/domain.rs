//! The order domain's rules, through the test kit: no store, no runtime.

use mammoth_core::{Metadata, RecordedEvent, StreamId, decode_recorded, encode_event};
use mammoth_example_orders::inventory::{
    Inventory, InventoryCommand, InventoryError, InventoryEvent, StockLine,
};
use mammoth_example_orders::order::{
    Order, OrderCommand, OrderError, OrderEvent, OrderLine, OrderStatus,
};
use mammoth_example_orders::payment::{Payment, PaymentCommand, PaymentError, PaymentEvent};
use mammoth_example_orders::versioning::{registry, schemas, upcasters};
use mammoth_testkit::aggregate::AggregateTest;
use serde_json::json;
use uuid::Uuid;

fn created() -> OrderEvent {
    OrderEvent::OrderCreated {
        order_id: "7".into(),
        customer_id: "ada".into(),
        items: vec![
            OrderLine::new("book", 2, 1500),
            OrderLine::new("pen", 1, 250),
        ],
        total_cents: 3250,
    }
}

fn create(total_cents: u64, items: Vec<OrderLine>) -> OrderCommand {
    OrderCommand::Create {
        order_id: "7".into(),
        customer_id: "ada".into(),
        items,
        total_cents,
    }
}

#[test]
fn an_order_is_created_when_its_total_matches_its_items() {
    AggregateTest::<Order>::given_no_events()
        .when(create(
            3250,
            vec![
                OrderLine::new("book", 2, 1500),
                OrderLine::new("pen", 1, 250),
            ],
        ))
        .then([created()]);
}

#[test]
fn an_order_whose_stated_total_is_wrong_is_refused() {
    AggregateTest::<Order>::given_no_events()
        .when(create(3000, vec![OrderLine::new("book", 2, 1600)]))
        .then_error(OrderError::TotalMismatch {
            stated: 3000,
            computed: 3200,
        });
}

#[test]
fn an_order_needs_items_with_a_quantity() {
    AggregateTest::<Order>::given_no_events()
        .when(create(0, vec![]))
        .then_error(OrderError::NoItems);
    AggregateTest::<Order>::given_no_events()
        .when(create(0, vec![OrderLine::new("book", 0, 1500)]))
        .then_error(OrderError::ZeroQuantity { sku: "book".into() });
}

#[test]
fn an_order_cannot_be_created_twice() {
    AggregateTest::<Order>::given([created()])
        .when(create(3250, vec![OrderLine::new("x", 1, 3250)]))
        .then_error(OrderError::AlreadyExists("7".into()));
}

#[test]
fn a_pending_order_is_paid_then_confirmed() {
    let paid = OrderEvent::OrderPaid {
        order_id: "7".into(),
        payment_id: "p1".into(),
        amount_cents: 3250,
    };
    AggregateTest::<Order>::given([created()])
        .when(OrderCommand::MarkPaid {
            payment_id: "p1".into(),
            amount_cents: 3250,
        })
        .then([paid.clone()]);
    AggregateTest::<Order>::given([created(), paid])
        .when(OrderCommand::Confirm)
        .then([OrderEvent::OrderConfirmed {
            order_id: "7".into(),
        }]);
}

#[test]
fn a_payment_of_the_wrong_amount_is_refused() {
    AggregateTest::<Order>::given([created()])
        .when(OrderCommand::MarkPaid {
            payment_id: "p1".into(),
            amount_cents: 100,
        })
        .then_error(OrderError::AmountMismatch {
            paid: 100,
            total: 3250,
        });
}

#[test]
fn an_unpaid_order_cannot_be_confirmed_and_a_cancelled_one_not_cancelled_again() {
    AggregateTest::<Order>::given([created()])
        .when(OrderCommand::Confirm)
        .then_error(OrderError::InvalidTransition {
            action: "confirm",
            status: OrderStatus::Pending,
        });
    let cancelled = OrderEvent::OrderCancelled {
        order_id: "7".into(),
        reason: "changed mind".into(),
    };
    AggregateTest::<Order>::given([created(), cancelled])
        .when(OrderCommand::Cancel {
            reason: "again".into(),
        })
        .then_error_matches("an invalid transition", |error| {
            matches!(
                error,
                OrderError::InvalidTransition {
                    action: "cancel",
                    ..
                }
            )
        });
}

#[test]
fn commands_on_a_missing_order_are_refused() {
    AggregateTest::<Order>::given_no_events()
        .when(OrderCommand::Confirm)
        .then_error(OrderError::NotFound);
}

fn stocked() -> Vec<InventoryEvent> {
    vec![
        InventoryEvent::StockAdded(StockLine::new("book", 3)),
        InventoryEvent::StockAdded(StockLine::new("pen", 1)),
    ]
}

#[test]
fn a_reservation_that_fits_holds_the_stock() {
    AggregateTest::<Inventory>::given(stocked())
        .when(InventoryCommand::Reserve {
            reservation_id: "7".into(),
            items: vec![StockLine::new("book", 3), StockLine::new("pen", 1)],
        })
        .then([InventoryEvent::StockReserved {
            reservation_id: "7".into(),
            items: vec![StockLine::new("book", 3), StockLine::new("pen", 1)],
        }]);
}

#[test]
fn a_reservation_fails_when_stock_is_short_counting_every_line_of_a_sku() {
    AggregateTest::<Inventory>::given(stocked())
        .when(InventoryCommand::Reserve {
            reservation_id: "7".into(),
            items: vec![StockLine::new("book", 2), StockLine::new("book", 2)],
        })
        .then([InventoryEvent::ReservationFailed {
            reservation_id: "7".into(),
            sku: "book".into(),
            requested: 4,
            available: 3,
        }]);
}

#[test]
fn reserved_stock_is_not_available_until_released() {
    let mut given = stocked();
    given.push(InventoryEvent::StockReserved {
        reservation_id: "7".into(),
        items: vec![StockLine::new("pen", 1)],
    });
    AggregateTest::<Inventory>::given(given.clone())
        .when(InventoryCommand::Reserve {
            reservation_id: "8".into(),
            items: vec![StockLine::new("pen", 1)],
        })
        .then([InventoryEvent::ReservationFailed {
            reservation_id: "8".into(),
            sku: "pen".into(),
            requested: 1,
            available: 0,
        }]);
    AggregateTest::<Inventory>::given(given.clone())
        .when(InventoryCommand::Release {
            reservation_id: "7".into(),
        })
        .then([InventoryEvent::ReservationReleased {
            reservation_id: "7".into(),
            items: vec![StockLine::new("pen", 1)],
        }]);
    AggregateTest::<Inventory>::given(given)
        .when(InventoryCommand::Reserve {
            reservation_id: "7".into(),
            items: vec![StockLine::new("book", 1)],
        })
        .then_error(InventoryError::DuplicateReservation("7".into()));
}

#[test]
fn releasing_an_unknown_reservation_is_refused() {
    AggregateTest::<Inventory>::given(stocked())
        .when(InventoryCommand::Release {
            reservation_id: "nope".into(),
        })
        .then_error(InventoryError::UnknownReservation("nope".into()));
}

fn pay(card: &str, amount_cents: u64) -> PaymentCommand {
    PaymentCommand::Process {
        order_id: "7".into(),
        amount_cents,
        card_token: card.into(),
    }
}

#[test]
fn a_payment_goes_through_or_is_declined_as_a_recorded_fact() {
    AggregateTest::<Payment>::given_no_events()
        .when(pay("tok_visa", 3250))
        .then([PaymentEvent::PaymentProcessed {
            order_id: "7".into(),
            amount_cents: 3250,
        }]);
    AggregateTest::<Payment>::given_no_events()
        .when(pay("tok_decline_stolen", 3250))
        .then([PaymentEvent::PaymentFailed {
            order_id: "7".into(),
            amount_cents: 3250,
            reason: "card declined by issuer".into(),
        }]);
    AggregateTest::<Payment>::given_no_events()
        .when(pay("tok_visa", 2_000_000))
        .then([PaymentEvent::PaymentFailed {
            order_id: "7".into(),
            amount_cents: 2_000_000,
            reason: "amount over the card limit".into(),
        }]);
}

#[test]
fn a_payment_is_processed_once() {
    AggregateTest::<Payment>::given([PaymentEvent::PaymentFailed {
        order_id: "7".into(),
        amount_cents: 3250,
        reason: "card declined by issuer".into(),
    }])
    .when(pay("tok_visa", 3250))
    .then_error(PaymentError::AlreadyProcessed("failed"));
}

fn stored(event_type: &str, schema_version: u32, data: serde_json::Value) -> RecordedEvent {
    RecordedEvent {
        id: Uuid::now_v7(),
        stream_id: StreamId::new("order-7").unwrap(),
        version: 1,
        position: 9,
        event_type: event_type.into(),
        schema_version,
        data: data.to_string(),
        metadata: Metadata::default(),
        recorded_at_micros: 0,
    }
}

#[test]
fn a_php_era_order_created_v1_reads_as_v2_with_integer_cents() {
    let v1 = stored(
        "OrderCreated",
        1,
        json!({
            "order_id": "7",
            "customer_id": "ada",
            "items": [{ "sku": "book", "quantity": 2, "price": "15.00" }, { "sku": "pen", "quantity": 1, "price": "2.5" }],
            "total": "32.50"
        }),
    );
    let events: Vec<OrderEvent> = decode_recorded(&v1, &upcasters()).unwrap();
    assert_eq!(events, vec![created()]);
    let decoded = registry().decode(&v1).unwrap();
    assert_eq!(decoded[0].schema_version, 2);
    assert_eq!(decoded[0].data["total_cents"], json!(3250));
}

#[test]
fn a_v1_total_that_is_not_an_amount_fails_naming_the_event() {
    for total in [json!("12.345"), json!("abc"), json!(null), json!("-5")] {
        let v1 = stored(
            "OrderCreated",
            1,
            json!({ "order_id": "7", "customer_id": "ada", "items": [], "total": total }),
        );
        let error = decode_recorded::<OrderEvent>(&v1, &upcasters()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("order-7") && message.contains("total"),
            "{message}"
        );
    }
}

#[test]
fn every_current_event_passes_its_schema_and_a_broken_one_names_field_and_rule() {
    let schemas = schemas();
    let events = [
        encode_event(&created()).unwrap(),
        encode_event(&InventoryEvent::StockAdded(StockLine::new("book", 1))).unwrap(),
        encode_event(&PaymentEvent::PaymentProcessed {
            order_id: "7".into(),
            amount_cents: 1,
        })
        .unwrap(),
    ];
    for event in &events {
        schemas.check(event).unwrap();
    }
    let mut broken = events[0].clone();
    broken.data["items"][0]["quantity"] = json!(0);
    let violation = schemas.check(&broken).unwrap_err();
    assert_eq!(
        (violation.field.as_str(), violation.rule.as_str()),
        ("/items/0/quantity", "minimum")
    );
    broken.data.as_object_mut().unwrap().remove("customer_id");
    broken.data["items"][0]["quantity"] = json!(1);
    let violation = schemas.check(&broken).unwrap_err();
    assert_eq!(
        (violation.field.as_str(), violation.rule.as_str()),
        ("/customer_id", "required")
    );
}
