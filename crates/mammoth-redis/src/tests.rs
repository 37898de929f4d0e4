//! Unit tests of what the driver decides without a server: receipts, dead-letter ids, the
//! idle time that stands for the visibility timeout, and decoding stored entries.

use std::time::Duration;

use mammoth_core::bus::{BusError, Receipt, Topic};

use crate::consume::{entry, message, min_idle};
use crate::dead::is_entry_id;

fn fields(pairs: &[(&str, &[u8])]) -> Vec<Vec<u8>> {
    pairs
        .iter()
        .flat_map(|(name, value)| [name.as_bytes().to_vec(), value.to_vec()])
        .collect()
}

#[test]
fn a_receipt_names_the_stream_kind_entry_and_delivery_count() {
    let receipt = Receipt::new("r:1700000000000-3:2");
    let parsed = entry(&receipt).expect("a Redis receipt");
    assert_eq!(
        (parsed.kind, parsed.id, parsed.count),
        ("r", "1700000000000-3", "2")
    );
}

#[test]
fn a_receipt_from_another_driver_is_invalid_input_not_a_silent_no_op() {
    for text in ["7:12:1", "x:1-0:1", "m:1-0", ""] {
        let receipt = Receipt::new(text);
        let result = entry(&receipt);
        assert!(
            matches!(result, Err(BusError::InvalidInput(_))),
            "{text:?} accepted"
        );
    }
}

#[test]
fn dead_letter_ids_that_are_not_stream_ids_select_nothing() {
    assert!(is_entry_id("1700000000000-0"));
    for bad in ["", "12", "-1", "1-", "a-1", "1-2-3", "+", "-"] {
        assert!(!is_entry_id(bad), "{bad:?} taken for an entry id");
    }
}

#[test]
fn the_visibility_timeout_becomes_an_idle_time_that_never_comes_early() {
    assert_eq!(min_idle(Duration::from_millis(400)), 401);
    assert_eq!(min_idle(Duration::from_micros(400_001)), 402);
    assert_eq!(min_idle(Duration::ZERO), 1);
}

#[test]
fn a_stored_entry_decodes_to_the_message_that_was_published() {
    let topic = Topic::new("orders").expect("topic");
    let id = uuid::Uuid::now_v7();
    let id_text = id.to_string();
    let decoded = message(
        &topic,
        fields(&[
            ("id", id_text.as_bytes()),
            ("k", b"order-1"),
            ("p", b"\x00\xffbinary"),
            ("h", br#"{"mammoth-event-type":"OrderPlaced"}"#),
            ("at", b"1700000000000000"),
            ("s", b"42"),
        ]),
    )
    .expect("decodes");
    assert_eq!(decoded.id, id);
    assert_eq!(decoded.key.as_deref(), Some("order-1"));
    assert_eq!(decoded.payload, b"\x00\xffbinary");
    assert_eq!(decoded.headers["mammoth-event-type"], "OrderPlaced");
    assert_eq!(
        (decoded.sequence, decoded.published_at_micros),
        (42, 1_700_000_000_000_000)
    );
}

#[test]
fn a_corrupt_entry_is_a_backend_error_naming_the_field() {
    let topic = Topic::new("orders").expect("topic");
    let error = message(
        &topic,
        fields(&[
            ("id", b"not-a-uuid"),
            ("p", b""),
            ("h", b"{}"),
            ("at", b"1"),
            ("s", b"1"),
        ]),
    )
    .expect_err("a bad id is rejected");
    assert!(error.to_string().contains("bad message id"), "{error}");
    let error = message(&topic, fields(&[("p", b"")])).expect_err("no id");
    assert!(error.to_string().contains("\"id\""), "{error}");
}

#[test]
fn headers_are_encoded_exactly_as_serde_json_writes_them() {
    let mut headers = std::collections::BTreeMap::new();
    headers.insert("plain".to_owned(), "OrderPlaced".to_owned());
    headers.insert(
        "quote\"back\\slash".to_owned(),
        "line\nfeed\ttab\r".to_owned(),
    );
    headers.insert("control".to_owned(), "\u{01}\u{08}\u{0c}\u{1f}".to_owned());
    headers.insert("unicode".to_owned(), "é€😀/".to_owned());
    let mut encoded = String::new();
    crate::bus::encode_headers(&headers, &mut encoded);
    assert_eq!(encoded, serde_json::to_string(&headers).expect("json"));
    let mut empty = String::new();
    crate::bus::encode_headers(&std::collections::BTreeMap::new(), &mut empty);
    assert_eq!(empty, "{}");
}

#[test]
fn a_publish_answer_numbers_new_messages_from_the_base_and_marks_listed_duplicates() {
    let published = crate::bus::decode_published(&[40, 2, 17, 4, 0], 4).expect("answer");
    let got: Vec<_> = published
        .iter()
        .map(|p| (p.sequence, p.duplicate))
        .collect();
    assert_eq!(got, [(41, false), (17, true), (43, false), (0, true)]);
    assert!(crate::bus::decode_published(&[], 1).is_err());
    assert!(crate::bus::decode_published(&[1, 5, 3], 2).is_err());
    assert!(crate::bus::decode_published(&[1, 0, 3], 2).is_err());
}
