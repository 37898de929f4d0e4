//! What the NATS tests share: the server URL from `MAMMOTH_TEST_NATS_URL` (skip with a printed
//! reason when unset, fail under `CI=true`) and unique stream names per test.

#![allow(dead_code)]

use mammoth_nats::NatsBusOptions;

/// The URL of the NATS server to test against, or `None` (after printing why) to skip.
///
/// # Panics
/// Under `CI=true` when the variable is unset: CI must never skip.
pub fn nats_url(test: &str) -> Option<String> {
    match std::env::var("MAMMOTH_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{test}: CI=true but MAMMOTH_TEST_NATS_URL is not set; .ci/run exports it")
        }
        _ => {
            eprintln!(
                "skipping {test}: set MAMMOTH_TEST_NATS_URL=nats://127.0.0.1:4222 to run it against a NATS server with JetStream"
            );
            None
        }
    }
}

/// Options with a stream name and subject prefix no other test run uses.
pub fn unique_options() -> NatsBusOptions {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let suffix = &suffix[..12];
    NatsBusOptions {
        stream: format!("MT_{suffix}"),
        subject_prefix: format!("mt{suffix}"),
        ..NatsBusOptions::default()
    }
}
