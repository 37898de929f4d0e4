//! The typed layer: defaults, unknown keys, types, durations, sizes, validation, render.

use std::time::Duration;

use mammoth_config::{
    Backoff, Checkpoint, Config, EventStoreBackend, MessageBusBackend, OnFailure, Synchronous,
};

use super::{assert_error_at, config, error};

fn ok(text: &str) -> Config {
    config(text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn no_keys_means_embedded_sqlite_embedded_bus_and_documented_defaults() {
    let c = ok("");
    assert_eq!(c.event_store.backend, EventStoreBackend::Sqlite);
    assert_eq!(
        c.event_store.sqlite_path(),
        std::path::Path::new("./mammoth-data/mammoth.db")
    );
    assert_eq!(c.event_store.pool_size, 10);
    assert_eq!(c.event_store.synchronous, Synchronous::Full);
    assert_eq!(c.event_store.max_event_size, 1 << 20);
    assert_eq!(c.event_store.max_events_per_append, 4096);
    assert_eq!(c.message_bus.backend, MessageBusBackend::Embedded);
    assert_eq!(c.message_bus.queue_prefix, "queue:");
    let r = &c.message_bus.retry;
    assert_eq!(
        (r.max_attempts, r.backoff, r.multiplier, r.jitter),
        (3, Backoff::Exponential, 2.0, true)
    );
    assert_eq!(
        (r.base_delay, r.max_delay),
        (Duration::from_secs(2), Duration::from_secs(300))
    );
    assert_eq!(c.message_bus.dead_letter.destination, "dead_letter");
    assert_eq!(
        (c.app.name.as_str(), c.app.environment.as_str()),
        ("mammoth", "development")
    );
    assert_eq!((c.snapshots.every, c.cqrs.max_conflict_retries), (100, 9));
    assert_eq!(
        (c.http.listen.as_str(), c.http.body_limit),
        ("127.0.0.1:8080", 1 << 20)
    );
    assert_eq!(
        (c.metrics.enabled, c.metrics.path.as_str()),
        (true, "/metrics")
    );
    assert!(c.versioning.upcasters && c.projections.is_empty() && c.sagas.is_empty());
    assert_eq!(c, Config::default());
}

#[test]
fn misspelt_section_is_e016_at_the_key_with_a_did_you_mean() {
    let err = error("[evnt_store]\nbackend: \"sqlite\"\n");
    assert_error_at(&err, "E016", 1, 2);
    assert_eq!(err.diagnostic().message(), "unknown key `evnt_store`");
    assert_eq!(err.diagnostic().help(), Some("did you mean `event_store`?"));
}

#[test]
fn misspelt_nested_key_names_its_full_path() {
    let err = error("[message_bus]\nretry: { max_atempts: 3 }\n");
    assert_error_at(&err, "E016", 2, 10);
    assert_eq!(
        err.diagnostic().message(),
        "unknown key `message_bus.retry.max_atempts`"
    );
    assert_eq!(
        err.diagnostic().help(),
        Some("did you mean `max_attempts`?")
    );
    let err = error("[projections.p]\nbatchsize: 3\n");
    assert_error_at(&err, "E016", 2, 1);
    assert_eq!(err.diagnostic().help(), Some("did you mean `batch_size`?"));
}

#[test]
fn unrelated_unknown_key_lists_the_allowed_ones() {
    let err = error("[metrics]\nzzzzzz: 1\n");
    assert_error_at(&err, "E016", 2, 1);
    assert_eq!(
        err.diagnostic().help(),
        Some("expected one of: `enabled`, `path`")
    );
}

#[test]
fn wrong_type_is_e017_at_the_value_naming_the_key() {
    let err = error("[event_store]\npool_size: \"ten\"\n");
    assert_error_at(&err, "E017", 2, 12);
    assert!(
        err.diagnostic()
            .message()
            .starts_with("`event_store.pool_size`: expected")
    );
    assert_error_at(&error("[metrics]\nenabled: 1\n"), "E017", 2, 10);
    assert_error_at(&error("event_store: 5"), "E017", 1, 14);
    assert_error_at(
        &error("[projections.p]\nevent_types: [\"a\", 2]"),
        "E017",
        2,
        20,
    );
}

#[test]
fn unknown_backend_is_e018_with_a_did_you_mean() {
    let err = error("[event_store]\nbackend: \"postgress\"\n");
    assert_error_at(&err, "E018", 2, 10);
    assert_eq!(err.diagnostic().help(), Some("did you mean `postgres`?"));
}

#[test]
fn backend_aliases_mariadb_and_nats_are_accepted() {
    let c = ok(
        "[event_store]\nbackend: \"mariadb\"\ndsn: \"mysql://h/db\"\n[message_bus]\nbackend: \"nats\"\n",
    );
    assert_eq!(c.event_store.backend, EventStoreBackend::Mysql);
    assert_eq!(c.message_bus.backend, MessageBusBackend::NatsJetstream);
}

#[test]
fn durations_parse_and_a_bad_one_is_e018_at_its_value() {
    let c = ok("[sagas.s]\ntimeout: \"7d\"\nstep_timeout: \"500ms\"\n");
    let saga = c.sagas.get("s").cloned().unwrap_or_default();
    assert_eq!(saga.timeout, Some(Duration::from_secs(7 * 86_400)));
    assert_eq!(saga.step_timeout, Some(Duration::from_millis(500)));
    let err = error("[message_bus.retry]\nbase_delay: \"10 parsecs\"\n");
    assert_error_at(&err, "E018", 2, 13);
    assert!(err.diagnostic().message().contains("invalid duration"));
    assert_error_at(&error("[sagas.s]\ntimeout: 30\n"), "E017", 2, 10);
}

#[test]
fn sizes_accept_bytes_or_units_and_refuse_junk() {
    let c = ok("[event_store]\nmax_event_size: 2048\n[http]\nbody_limit: \"2MiB\"\n");
    assert_eq!(
        (c.event_store.max_event_size, c.http.body_limit),
        (2048, 2 << 20)
    );
    assert_error_at(&error("[http]\nbody_limit: \"lots\""), "E018", 2, 13);
    assert_error_at(&error("[http]\nbody_limit: -1"), "E018", 2, 13);
}

#[test]
fn out_of_range_integer_for_a_port_is_reported_at_the_value() {
    let err = error("[message_bus]\nbackend: \"redis\"\nport: 70000\n");
    assert_error_at(&err, "E018", 3, 7);
}

#[test]
fn range_violations_point_at_the_offending_key() {
    let cases = [
        ("[message_bus.retry]\nmultiplier: 0.5\n", 2, "multiplier"),
        ("[message_bus]\nretry.max_attempts: 0\n", 2, "max_attempts"),
        ("[projections.p]\nbatch_size: 0\n", 2, "batch_size"),
        (
            "[message_bus.retry]\nbase_delay: \"10s\"\nmax_delay: \"1s\"\n",
            2,
            "base_delay",
        ),
        (
            "[sagas.s]\ntimeout: \"1m\"\nstep_timeout: \"2m\"\n",
            3,
            "step_timeout",
        ),
        ("[http]\nlisten: \"8080\"\n", 2, "listen"),
        ("[metrics]\npath: \"metrics\"\n", 2, "path"),
        ("[event_store]\npool_size: 0\n", 2, "pool_size"),
        ("[message_bus.topics]\ndefault: \"a b\"\n", 2, "default"),
        (
            "[message_bus.topics]\ncategories: { order: \"or/ders\" }\n",
            2,
            "order",
        ),
    ];
    for (text, line, key) in cases {
        let err = error(text);
        let col = super::col_of(text.lines().nth(line as usize - 1).unwrap_or(""), key);
        assert_error_at(&err, "E018", line, col);
        assert!(err.diagnostic().message().contains(key), "{text}: {err}");
    }
}

#[test]
fn violation_of_a_default_value_points_at_the_nearest_written_key() {
    let err = error("[event_store]\nbackend: \"postgres\"\n");
    assert_error_at(&err, "E018", 2, 1);
    assert!(
        err.diagnostic()
            .message()
            .contains("needs `event_store.dsn`")
    );
    let err = error("[message_bus]\nbackend: \"embedded\"\nurl: \"nats://x\"\n");
    assert_error_at(&err, "E018", 2, 1);
}

#[test]
fn a_projection_stops_on_a_failing_event_unless_told_to_park_it() {
    let c = ok("[projections.a]\nbatch_size: 5\n[projections.b]\non_failure: \"park\"\n");
    let on_failure = |name: &str| c.projections.get(name).map(|p| p.on_failure);
    assert_eq!(on_failure("a"), Some(OnFailure::Stop));
    assert_eq!(on_failure("b"), Some(OnFailure::Park));
    let rendered = c.render();
    assert!(rendered.contains("on_failure: \"park\""), "{rendered}");
    let err = error("[projections.p]\non_failure: \"skip\"\n");
    assert!(err.to_string().contains("on_failure"), "{err}");
}

#[test]
fn enums_and_maps_fill_from_the_file() {
    let text = "[event_store]\nsynchronous: \"normal\"\n[projections.p]\ncheckpoint: \"read_model\"\ncategories: [\"order\"]\n[snapshots.per_aggregate]\nOrder: 50\n[cqrs.command_handlers]\nCreate: \"orders.create\"\n";
    let c = ok(text);
    assert_eq!(c.event_store.synchronous, Synchronous::Normal);
    let p = c.projections.get("p").cloned().unwrap_or_default();
    assert_eq!(
        (p.checkpoint, p.categories),
        (Checkpoint::ReadModel, vec!["order".to_owned()])
    );
    assert_eq!(c.snapshots.per_aggregate.get("Order"), Some(&50));
    assert_eq!(
        c.cqrs.command_handlers.get("Create").map(String::as_str),
        Some("orders.create")
    );
}

#[test]
fn render_prints_sections_and_reparses_to_the_same_config() {
    let text = "[app]\nname: \"orders \\\"x\\\"\"\n[projections.\"a b\"]\nevent_types: [\"E\"]\n[message_bus.retry]\nmultiplier: 1.5\nbase_delay: \"1s 500ms\"\n";
    let c = ok(text);
    let rendered = c.render();
    assert!(rendered.contains("[event_store]\n") && rendered.contains("backend: \"sqlite\"\n"));
    assert!(rendered.contains("[projections.\"a b\"]"), "{rendered}");
    assert!(
        rendered.contains("multiplier: 1.5\n") && rendered.contains("base_delay: \"1s 500ms\"")
    );
    assert_eq!(config(&rendered).map_err(|e| e.to_string()), Ok(c));
    assert_eq!(config(&ok("").render()).ok(), Some(Config::default()));
}

#[test]
fn json_output_is_valid_json_with_durations_as_text() {
    let json: serde_json::Value = serde_json::from_str(&ok("").to_json()).unwrap_or_default();
    assert_eq!(json["message_bus"]["retry"]["base_delay"], "2s");
    assert_eq!(json["event_store"]["backend"], "sqlite");
    assert_eq!(json["event_store"]["max_event_size"], "1MiB");
}

#[test]
fn errors_from_validate_on_code_built_configs_have_no_position() {
    let mut c = Config::default();
    c.message_bus.retry.multiplier = f64::NAN;
    let err = c.validate().expect_err("NaN multiplier");
    assert_eq!((err.code().as_str(), err.span()), ("E018", None));
    assert!(Config::default().validate().is_ok());
}

#[test]
fn text_that_looks_like_an_operator_renders_escaped_and_reads_back_as_text() {
    let mut c = Config::default();
    c.app.name = "@env(\"X\")".to_owned();
    let rendered = c.render();
    assert!(
        rendered.contains("name: \"\\u{40}env(\\\"X\\\")\""),
        "{rendered}"
    );
    assert_eq!(config(&rendered).map_err(|e| e.to_string()), Ok(c));
}

#[test]
fn topic_mapping_reads_default_categories_and_types() {
    let c = ok("");
    assert_eq!(c.message_bus.topics.default, "events");
    assert!(c.message_bus.topics.categories.is_empty());
    let text = "[message_bus.topics]\ndefault: \"\"\ncategories: { order: \"orders\" }\n[message_bus.topics.types]\nPaymentFailed: \"payments\"\n";
    let topics = ok(text).message_bus.topics;
    assert_eq!(topics.default, "");
    assert_eq!(
        topics.categories.get("order").map(String::as_str),
        Some("orders")
    );
    assert_eq!(
        topics.types.get("PaymentFailed").map(String::as_str),
        Some("payments")
    );
    let err = error("[message_bus.topics]\ncategory: { order: \"orders\" }\n");
    assert_eq!(
        err.diagnostic().message(),
        "unknown key `message_bus.topics.category`"
    );
}

#[test]
fn dead_letters_turned_off_are_refused_because_nothing_may_be_dropped_silently() {
    let err = error("[message_bus.dead_letter]\nenabled: false\n");
    assert_error_at(&err, "E018", 2, 1);
    let text = err.to_string();
    assert!(text.contains("never drops a message silently"), "{text}");
    assert!(text.contains("max_attempts"), "{text}");
}

#[test]
fn the_configured_bus_policy_is_what_the_bus_and_relay_get() {
    let c = ok(
        "[message_bus.retry]\nmax_attempts: 5\nbase_delay: \"500ms\"\nmax_delay: \"1m\"\n[message_bus.topics]\ntypes: { PaymentFailed: \"payments\" }\n",
    );
    let policy = c.message_bus.bus_policy().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            policy.retry.max_attempts,
            policy.retry.base,
            policy.retry.cap
        ),
        (5, Duration::from_millis(500), Duration::from_secs(60))
    );
    let topics: Vec<&str> = policy.topics.topics().iter().map(|t| t.as_str()).collect();
    assert_eq!(topics, ["events", "payments"]);
}
