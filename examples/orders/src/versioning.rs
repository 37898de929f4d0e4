//! How the order domain's stored events evolve: upcasters from older versions, the JSON
//! Schemas of the current versions, and the [`EventRegistry`] the CLI decodes with.

use mammoth_core::{EventRegistry, Upcasters};
use mammoth_runtime::Schemas;
use serde_json::{Value, json};

use crate::inventory::InventoryEvent;
use crate::order::OrderEvent;
use crate::payment::PaymentEvent;

/// The upcasters of the order domain.
///
/// - `OrderCreated` v1 → v2: v1 stored `total` as a decimal string of currency units
///   (`"30.00"`, as the seed's PHP did) and `price` per item the same way; v2 stores integer
///   cents in `total_cents` and `unit_price_cents`.
pub fn upcasters() -> Upcasters {
    Upcasters::new().add("OrderCreated", 1, order_created_v1_to_v2)
}

/// `"12.5"` or `"12.50"` or `12.5` as cents, refusing anything that is not an amount.
fn cents(value: &Value, field: &str) -> Result<u64, String> {
    let text = match value {
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        _ => return Err(format!("{field} is not an amount: {value}")),
    };
    let (units, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if units.is_empty()
        || fraction.len() > 2
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "{field} is not an amount with at most 2 decimals: {text:?}"
        ));
    }
    let units: u64 = units
        .parse()
        .map_err(|_| format!("{field} is too large: {text:?}"))?;
    let fraction: u64 = format!("{fraction:0<2}").parse().unwrap_or(0);
    units
        .checked_mul(100)
        .and_then(|cents| cents.checked_add(fraction))
        .ok_or_else(|| format!("{field} is too large: {text:?}"))
}

fn order_created_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let object = data.as_object_mut().ok_or("data is not an object")?;
    let total = object
        .remove("total")
        .ok_or("v1 OrderCreated has no total")?;
    object.insert("total_cents".to_owned(), json!(cents(&total, "total")?));
    if let Some(Value::Array(items)) = object.get_mut("items") {
        for item in items {
            let item = item.as_object_mut().ok_or("an item is not an object")?;
            let price = item.remove("price").ok_or("a v1 item has no price")?;
            item.insert(
                "unit_price_cents".to_owned(),
                json!(cents(&price, "price")?),
            );
        }
    }
    Ok(data)
}

/// The JSON Schemas of the current event versions; the repository checks them on append.
///
/// # Panics
/// Never: the schemas are constants and a test compiles them.
pub fn schemas() -> Schemas {
    let text = |max: u64| json!({ "type": "string", "minLength": 1, "maxLength": max });
    let count = json!({ "type": "integer", "minimum": 1 });
    let cents = json!({ "type": "integer", "minimum": 0 });
    let stock_line = json!({
        "type": "object",
        "required": ["sku", "quantity"],
        "properties": { "sku": text(64), "quantity": count }
    });
    let stock_lines = json!({ "type": "array", "minItems": 1, "items": stock_line });
    let schema = |required: &[&str], properties: Value| json!({ "type": "object", "required": required, "properties": properties });
    let all = [
        (
            "OrderCreated",
            2,
            schema(
                &["order_id", "customer_id", "items", "total_cents"],
                json!({
                    "order_id": text(128),
                    "customer_id": text(128),
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 500,
                        "items": {
                            "type": "object",
                            "required": ["sku", "quantity", "unit_price_cents"],
                            "properties": {
                                "sku": text(64),
                                "quantity": count,
                                "unit_price_cents": cents
                            }
                        }
                    },
                    "total_cents": { "type": "integer", "minimum": 1 }
                }),
            ),
        ),
        (
            "OrderCancelled",
            1,
            schema(
                &["order_id", "reason"],
                json!({ "order_id": text(128), "reason": text(1000) }),
            ),
        ),
        (
            "OrderPaid",
            1,
            schema(
                &["order_id", "payment_id", "amount_cents"],
                json!({ "order_id": text(128), "payment_id": text(128), "amount_cents": cents }),
            ),
        ),
        (
            "OrderConfirmed",
            1,
            schema(&["order_id"], json!({ "order_id": text(128) })),
        ),
        ("StockAdded", 1, stock_line.clone()),
        (
            "StockReserved",
            1,
            schema(
                &["reservation_id", "items"],
                json!({ "reservation_id": text(128), "items": stock_lines }),
            ),
        ),
        (
            "ReservationReleased",
            1,
            schema(
                &["reservation_id", "items"],
                json!({ "reservation_id": text(128), "items": stock_lines }),
            ),
        ),
        (
            "ReservationFailed",
            1,
            schema(
                &["reservation_id", "sku", "requested", "available"],
                json!({
                    "reservation_id": text(128),
                    "sku": text(64),
                    "requested": count,
                    "available": { "type": "integer", "minimum": 0 }
                }),
            ),
        ),
        (
            "PaymentProcessed",
            1,
            schema(
                &["order_id", "amount_cents"],
                json!({ "order_id": text(128), "amount_cents": { "type": "integer", "minimum": 1 } }),
            ),
        ),
        (
            "PaymentFailed",
            1,
            schema(
                &["order_id", "amount_cents", "reason"],
                json!({ "order_id": text(128), "amount_cents": cents, "reason": text(1000) }),
            ),
        ),
    ];
    all.into_iter()
        .try_fold(Schemas::new(), |schemas, (event_type, version, schema)| {
            schemas.add(event_type, version, schema)
        })
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Every event type of the order domain with its upcasters: what `mammoth events read
/// --decode` uses to show stored events as the current code reads them.
pub fn registry() -> EventRegistry {
    EventRegistry::new(upcasters())
        .with::<OrderEvent>()
        .with::<InventoryEvent>()
        .with::<PaymentEvent>()
}
