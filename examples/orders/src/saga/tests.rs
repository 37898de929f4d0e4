//! The order saga's decisions, stepped through the pure saga envelope (`SagaInstance::step`)
//! the runner uses: no store, no bus.

use mammoth_core::saga::{SagaInput, SagaInstance, SagaStatus};
use mammoth_core::{Metadata, RecordedEvent, StreamId};
use serde_json::json;
use uuid::Uuid;

use super::{OrderSaga, OrderSagaState, OrderStage, PAYMENT_DEADLINE};
use mammoth_core::saga::Saga as _;

type Instance = SagaInstance<OrderSagaState>;

fn event(
    stream: &str,
    event_type: &str,
    data: serde_json::Value,
    cause: Option<Uuid>,
) -> RecordedEvent {
    RecordedEvent {
        id: Uuid::now_v7(),
        stream_id: StreamId::new(stream).unwrap(),
        version: 1,
        position: 1,
        event_type: event_type.to_owned(),
        schema_version: if event_type == "OrderCreated" { 2 } else { 1 },
        data: data.to_string(),
        metadata: Metadata {
            causation_id: cause,
            ..Metadata::default()
        },
        recorded_at_micros: 1,
    }
}

fn created() -> RecordedEvent {
    event(
        "order-7",
        "OrderCreated",
        json!({"order_id": "7", "customer_id": "ada",
               "items": [{"sku": "w1:book", "quantity": 2, "unit_price_cents": 1500}],
               "total_cents": 3000}),
        None,
    )
}

/// Steps `instance` with `input` from `source` and returns the issued command names.
fn step(
    saga: &OrderSaga,
    instance: &mut Instance,
    source: Option<&RecordedEvent>,
    input: &SagaInput<'_>,
) -> Vec<(String, Uuid)> {
    let step = instance
        .step(saga, input, source, 1_000)
        .unwrap()
        .expect("the step writes something");
    let issued = step
        .commands
        .iter()
        .map(|issued| (issued.command.name.clone(), issued.id))
        .collect();
    *instance = step.instance;
    instance.version += 1 + step.commands.len() as u64;
    issued
}

fn on(saga: &OrderSaga, instance: &mut Instance, event: &RecordedEvent) -> Vec<(String, Uuid)> {
    step(saga, instance, Some(event), &SagaInput::Event(event))
}

fn names(issued: &[(String, Uuid)]) -> Vec<&str> {
    issued.iter().map(|(name, _)| name.as_str()).collect()
}

fn started(saga: &OrderSaga) -> (Instance, Uuid) {
    let mut instance = Instance::new("order", "7").unwrap();
    let created = created();
    assert_eq!(saga.starts(&created).as_deref(), Some("7"));
    let issued = on(saga, &mut instance, &created);
    assert_eq!(names(&issued), ["ReserveInventory"]);
    (instance, issued[0].1)
}

fn reserved(saga: &OrderSaga) -> (Instance, Uuid) {
    let (mut instance, reserve) = started(saga);
    let stock = event(
        "inventory-w1",
        "StockReserved",
        json!({"reservation_id": "7", "items": [{"sku": "w1:book", "quantity": 2}]}),
        Some(reserve),
    );
    assert_eq!(saga.correlate(&stock).as_deref(), Some("7"));
    let issued = on(saga, &mut instance, &stock);
    assert_eq!(names(&issued), ["ProcessPayment"]);
    assert_eq!(
        instance.timers.len(),
        1,
        "the payment deadline is scheduled"
    );
    (instance, issued[0].1)
}

#[test]
fn a_paid_order_is_reserved_paid_confirmed_and_the_saga_completes() {
    let saga = OrderSaga::default();
    let (mut instance, pay) = reserved(&saga);
    let paid = event(
        "payment-7",
        "PaymentProcessed",
        json!({"order_id": "7", "amount_cents": 3000}),
        Some(pay),
    );
    let issued = on(&saga, &mut instance, &paid);
    assert_eq!(names(&issued), ["ConfirmOrder"]);
    assert!(
        instance.timers.is_empty(),
        "the payment deadline is cancelled"
    );
    let confirmed = event(
        "order-7",
        "OrderConfirmed",
        json!({"order_id": "7"}),
        Some(issued[0].1),
    );
    on(&saga, &mut instance, &confirmed);
    assert_eq!(instance.status, SagaStatus::Completed);
    assert_eq!(instance.state.stage, OrderStage::Done);
}

#[test]
fn a_failed_reservation_cancels_the_order_and_nothing_else() {
    let saga = OrderSaga::default();
    let (mut instance, reserve) = started(&saga);
    let failed = event(
        "inventory-w1",
        "ReservationFailed",
        json!({"reservation_id": "7", "sku": "w1:book", "requested": 2, "available": 0}),
        Some(reserve),
    );
    let issued = on(&saga, &mut instance, &failed);
    assert_eq!(names(&issued), ["CancelOrder"]);
    assert_eq!(instance.status, SagaStatus::Compensating);
    let cancelled = event(
        "order-7",
        "OrderCancelled",
        json!({"order_id": "7", "reason": "x"}),
        Some(issued[0].1),
    );
    on(&saga, &mut instance, &cancelled);
    assert_eq!(instance.status, SagaStatus::Compensated);
    assert!(
        instance
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("w1:book short")
    );
}

#[test]
fn a_declined_payment_releases_the_stock_before_it_cancels_the_order() {
    let saga = OrderSaga::default();
    let (mut instance, pay) = reserved(&saga);
    let declined = event(
        "payment-7",
        "PaymentFailed",
        json!({"order_id": "7", "amount_cents": 3000, "reason": "card declined by issuer"}),
        Some(pay),
    );
    let issued = on(&saga, &mut instance, &declined);
    assert_eq!(
        names(&issued),
        ["ReleaseInventory"],
        "compensations run newest first, one at a time"
    );
    assert!(
        instance.timers.is_empty(),
        "an ending saga drops its deadline"
    );
    // An unrelated answer does not advance the compensation.
    let stray = event(
        "order-7",
        "OrderCancelled",
        json!({"order_id": "7", "reason": "x"}),
        Some(pay),
    );
    assert!(
        instance
            .step(&saga, &SagaInput::Event(&stray), Some(&stray), 1)
            .unwrap()
            .is_none()
    );
    let released = event(
        "inventory-w1",
        "ReservationReleased",
        json!({"reservation_id": "7", "items": []}),
        Some(issued[0].1),
    );
    let issued = on(&saga, &mut instance, &released);
    assert_eq!(names(&issued), ["CancelOrder"]);
    let cancelled = event(
        "order-7",
        "OrderCancelled",
        json!({"order_id": "7", "reason": "x"}),
        Some(issued[0].1),
    );
    on(&saga, &mut instance, &cancelled);
    assert_eq!(instance.status, SagaStatus::Compensated);
    assert!(
        instance
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("card declined")
    );
}

#[test]
fn no_payment_answer_before_the_deadline_compensates_like_a_declined_card() {
    let saga = OrderSaga::default();
    let (mut instance, _pay) = reserved(&saga);
    let issued = step(
        &saga,
        &mut instance,
        None,
        &SagaInput::DeadlineExpired {
            name: PAYMENT_DEADLINE,
        },
    );
    assert_eq!(names(&issued), ["ReleaseInventory"]);
    assert_eq!(instance.status, SagaStatus::Compensating);
    assert!(
        instance
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("no payment answer")
    );
    // The late payment answer is ignored while compensating.
    let late = event(
        "payment-7",
        "PaymentProcessed",
        json!({"order_id": "7", "amount_cents": 3000}),
        Some(Uuid::now_v7()),
    );
    assert!(
        instance
            .step(&saga, &SagaInput::Event(&late), Some(&late), 1)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_rejected_payment_command_compensates() {
    let saga = OrderSaga::default();
    let (mut instance, pay) = reserved(&saga);
    let report = event(
        "$saga-order-7-rejections",
        "CommandRejected",
        json!({"command_id": pay, "command": "ProcessPayment", "reason": "amount must be positive"}),
        Some(pay),
    );
    let input = SagaInput::CommandRejected {
        command: "ProcessPayment",
        reason: "amount must be positive",
    };
    let issued = step(&saga, &mut instance, Some(&report), &input);
    assert_eq!(names(&issued), ["ReleaseInventory"]);
    assert!(
        instance
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("ProcessPayment was rejected")
    );
}

#[test]
fn the_same_event_twice_is_one_step() {
    let saga = OrderSaga::default();
    let (instance, _) = started(&saga);
    let created = created();
    // A fresh OrderCreated id would be another input; the same id is skipped.
    let mut again = instance.clone();
    again.processed.insert(created.id);
    assert!(
        again
            .step(&saga, &SagaInput::Event(&created), Some(&created), 1)
            .unwrap()
            .is_none()
    );
}
