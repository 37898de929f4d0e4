//! `mammoth bench bus` with its message bus on a broker: NATS JetStream
//! (`MAMMOTH_TEST_NATS_URL`) and Redis Streams (`MAMMOTH_TEST_REDIS_URL`). Each test configures
//! its own stream, subject prefix or key prefix; without the URL it is skipped with a note, and
//! under `CI=true` a missing URL fails it.

mod support;

use serde_json::Value;
use support::{Sandbox, service_url, suffix};

/// Runs `mammoth --config <tsk> bench bus --quick --json` with `tsk` and returns the report,
/// asserting it names `backend`, has one run of 5,000 messages, and positive raw and relay
/// rates in the run and the median.
fn quick_bench_on(tsk: &str, backend: &str) -> Value {
    let sandbox = Sandbox::new();
    let config = sandbox.write("broker.tsk", tsk);
    let config = config.to_str().expect("utf-8 path");
    let run = sandbox.run(&["--config", config, "bench", "bus", "--quick", "--json"]);
    let report = run.json();
    assert_eq!(report["benchmark"], "bus", "{run:#?}");
    assert_eq!(report["backend"], backend, "{run:#?}");
    assert_eq!(report["messages"], 5_000, "{run:#?}");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "--quick is one run: {run:#?}");
    for part in [&runs[0], &report["median"]] {
        for rate in [
            "raw_per_sec",
            "relay_per_sec",
            "publish_per_sec",
            "consume_per_sec",
        ] {
            let value = part[rate].as_f64().unwrap_or(0.0);
            assert!(value > 0.0, "{rate} is {value}: {run:#?}");
        }
        assert!(
            part["relay_ratio"].as_f64().unwrap_or(0.0) > 0.0,
            "{run:#?}"
        );
    }
    assert!(
        report["relay_target"].as_f64().unwrap_or(0.0) > 0.0,
        "{run:#?}"
    );
    report
}

#[test]
fn bench_bus_on_nats_measures_the_broker_not_the_embedded_bus() {
    let Some(url) = service_url("MAMMOTH_TEST_NATS_URL") else {
        return;
    };
    let suffix = suffix();
    let report = quick_bench_on(
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"nats\"\nurl: \"{url}\"\nstream: \"MBENCH_{suffix}\"\nsubject_prefix: \"mbench{suffix}\"\n"
        ),
        "nats",
    );
    assert_eq!(report["relay_target"], 0.6);
}

#[test]
fn bench_bus_on_redis_measures_the_broker_not_the_embedded_bus() {
    let Some(url) = service_url("MAMMOTH_TEST_REDIS_URL") else {
        return;
    };
    let suffix = suffix();
    let report = quick_bench_on(
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"redis\"\nurl: \"{url}\"\nqueue_prefix: \"mbench{suffix}:\"\n"
        ),
        "redis",
    );
    assert_eq!(report["relay_target"], 0.5);
    let median = &report["median"];
    assert!(
        median["relay_read_per_sec"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
}

#[test]
fn bench_bus_on_a_broker_refuses_the_embedded_only_flags_before_connecting() {
    let sandbox = Sandbox::new();
    // Nothing listens on port 1: the refusal must come before any connection.
    sandbox.write(
        "mammoth.tsk",
        "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"redis\"\nurl: \"redis://127.0.0.1:1\"\nqueue_prefix: \"never:\"\n",
    );
    let run = sandbox.run(&["bench", "bus", "--quick", "--seconds", "1"]);
    let stderr = run.failed_with(2);
    assert!(stderr.contains("--seconds"), "{stderr}");
    assert!(stderr.contains("--messages"), "{stderr}");
}

#[test]
fn bench_bus_on_the_embedded_bus_refuses_messages_naming_seconds() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["bench", "bus", "--quick", "--messages", "100"]);
    let stderr = run.failed_with(2);
    assert!(stderr.contains("--seconds"), "{stderr}");
}
