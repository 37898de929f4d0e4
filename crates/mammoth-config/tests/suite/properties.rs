//! Properties: no input makes the reader panic, errors point inside the text, and a rendered
//! configuration (without secrets) parses back to itself.

use std::path::Path;
use std::time::Duration;

use mammoth_config::{
    AppConfig, Backoff, Checkpoint, Config, ConfigError, CqrsConfig, DeadLetterConfig, Document,
    EventStoreBackend, EventStoreConfig, HttpConfig, MessageBusBackend, MessageBusConfig,
    MetricsConfig, OnFailure, ProjectionConfig, RetryConfig, SagaConfig, SecurityConfig,
    SnapshotConfig, Synchronous, VersioningConfig,
};
use proptest::prelude::*;

const EXAMPLES: [&str; 3] = [
    include_str!("../fixtures/dev.tsk"),
    include_str!("../fixtures/production.tsk"),
    include_str!("../fixtures/guide.tsk"),
];

/// Every variable is set, so `.secure` operators resolve and type rules get exercised.
fn every_var(_name: &str) -> Option<String> {
    Some("1".to_owned())
}

fn read(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, Path::new("/nonexistent/config/p.tsk"), &every_var)
}

/// A positioned error must point at a line of the text, at most one column past its end.
fn assert_points_inside(text: &str, err: &ConfigError) {
    let Some(span) = err.span() else { return };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').collect();
    let line = lines.get(span.line as usize - 1);
    let line = line.unwrap_or_else(|| panic!("line {} outside the text: {err}", span.line));
    let width = line.chars().count() as u32 + 1;
    assert!(
        span.col >= 1 && span.col <= width,
        "column {} outside {line:?}: {err}",
        span.col
    );
    let _ = err.to_string();
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop_oneof![
        proptest::char::range(' ', '~'),
        Just('\n'),
        Just('\r'),
        Just('\u{feff}'),
        Just('é'),
        Just('\0'),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), interesting).prop_map(|(i, c)| Edit::Replace(i, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let len = chars.len().max(1);
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % len);
            }
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % len] = c,
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::string::string_regex("(?s).{0,12}").unwrap_or_else(|e| panic!("{e}")),
        proptest::string::string_regex("[a-z_${}@()'\"\\\\ .]{0,12}")
            .unwrap_or_else(|e| panic!("{e}")),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    (0u64..10_000_000_000_000_000).prop_map(Duration::from_nanos)
}

fn ordered(a: Duration, b: Duration) -> (Duration, Duration) {
    if a <= b { (a, b) } else { (b, a) }
}

const MAX_FILE_INT: u64 = i64::MAX as u64;

prop_compose! {
    fn event_store()(
        sqlite in any::<bool>(), username in proptest::option::of(text()),
        pool_size in 1u32.., schema in proptest::option::of(text()), normal in any::<bool>(),
        max_event_size in 1u64.., max_events_per_append in 1u32..,
    ) -> EventStoreConfig {
        EventStoreConfig {
            backend: if sqlite { EventStoreBackend::Sqlite } else { EventStoreBackend::Memory },
            dsn: None, username, password: None, pool_size, schema,
            synchronous: if normal { Synchronous::Normal } else { Synchronous::Full },
            max_event_size, max_events_per_append,
        }
    }
}

prop_compose! {
    fn message_bus()(
        backend in 0u8..3, url in proptest::option::of(text()), host in proptest::option::of(text()),
        port in proptest::option::of(any::<u16>()), stream in proptest::option::of(text()),
        subject_prefix in proptest::option::of(text()), queue_prefix in text(),
        max_attempts in 1u32.., fixed in any::<bool>(), delays in (duration(), duration()),
        multiplier in 1.0f64..1e15, jitter in any::<bool>(), destination in text(),
    ) -> MessageBusConfig {
        let backend = [MessageBusBackend::Embedded, MessageBusBackend::NatsJetstream, MessageBusBackend::Redis][usize::from(backend)];
        let networked = backend != MessageBusBackend::Embedded;
        let (base_delay, max_delay) = ordered(delays.0, delays.1);
        MessageBusConfig {
            backend, url: url.filter(|_| networked), host: host.filter(|_| networked), port, stream,
            subject_prefix, queue_prefix, credentials: None,
            retry: RetryConfig {
                max_attempts, backoff: if fixed { Backoff::Fixed } else { Backoff::Exponential },
                base_delay, multiplier, max_delay, jitter,
            },
            // `enabled: false` is refused by validation (nothing may be dropped silently).
            dead_letter: DeadLetterConfig { enabled: true, destination },
            topics: mammoth_config::TopicsConfig::default(),
        }
    }
}

prop_compose! {
    fn projection()(
        event_types in proptest::collection::vec(text(), 0..3),
        categories in proptest::collection::vec(text(), 0..3),
        read_model in any::<bool>(), park in any::<bool>(), batch_size in 1u32..,
    ) -> ProjectionConfig {
        let checkpoint = if read_model { Checkpoint::ReadModel } else { Checkpoint::EventStore };
        let on_failure = if park { OnFailure::Park } else { OnFailure::Stop };
        ProjectionConfig { event_types, categories, checkpoint, on_failure, batch_size, read_dsn: None }
    }
}

prop_compose! {
    fn saga()(
        start_on in proptest::option::of(text()), event_types in proptest::collection::vec(text(), 0..3),
        timeouts in (proptest::option::of(duration()), proptest::option::of(duration())),
    ) -> SagaConfig {
        let (timeout, step_timeout) = match timeouts {
            (Some(a), Some(b)) => { let (s, t) = ordered(a, b); (Some(t), Some(s)) }
            other => other,
        };
        SagaConfig { start_on, event_types, timeout, step_timeout }
    }
}

prop_compose! {
    fn rest()(
        app in (text(), text()),
        every in 0..=MAX_FILE_INT,
        per_aggregate in proptest::collection::btree_map(text(), 0..=MAX_FILE_INT, 0..3),
        upcasters in any::<bool>(),
        handlers in (proptest::collection::btree_map(text(), text(), 0..3), proptest::collection::btree_map(text(), text(), 0..3)),
        max_conflict_retries in any::<u32>(),
        listen in ("[a-z0-9.]{1,10}", any::<u16>()), body_limit in 1u64..,
        metrics in (any::<bool>(), text()),
    ) -> (AppConfig, SnapshotConfig, VersioningConfig, CqrsConfig, HttpConfig, MetricsConfig) {
        (
            AppConfig { name: app.0, environment: app.1 },
            SnapshotConfig { every, per_aggregate },
            VersioningConfig { upcasters },
            CqrsConfig { command_handlers: handlers.0, query_handlers: handlers.1, max_conflict_retries },
            HttpConfig { listen: format!("{}:{}", listen.0, listen.1), body_limit, ..HttpConfig::default() },
            MetricsConfig { enabled: metrics.0, path: format!("/{}", metrics.1) },
        )
    }
}

prop_compose! {
    fn any_config()(
        event_store in event_store(), message_bus in message_bus(),
        projections in proptest::collection::btree_map(text(), projection(), 0..3),
        sagas in proptest::collection::btree_map(text(), saga(), 0..3),
        rest in rest(),
    ) -> Config {
        let (app, snapshots, versioning, cqrs, http, metrics) = rest;
        Config {
            app, event_store, message_bus, projections, sagas, snapshots, versioning, cqrs,
            security: SecurityConfig::default(), http, metrics,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let result = Document::parse_bytes(&bytes, Path::new("p.tsk"), &every_var);
        if let (Err(err), Ok(text)) = (&result, std::str::from_utf8(&bytes)) {
            assert_points_inside(text, err);
        }
    }

    #[test]
    fn random_tsk_like_text_never_panics(text in "[\\[\\]{}\"'@$#/:=,;.\\\\ \tA-Za-z0-9_\\-+\n\r]{0,200}") {
        if let Err(err) = read(&text) {
            assert_points_inside(&text, &err);
        }
    }

    #[test]
    fn mutated_examples_never_panic(which in 0usize..3, edits in proptest::collection::vec(edit(), 1..6)) {
        let text = apply(EXAMPLES[which], &edits);
        if let Err(err) = read(&text) {
            assert_points_inside(&text, &err);
        }
    }

    #[test]
    fn rendered_config_parses_back_to_itself(config in any_config()) {
        prop_assert!(config.validate().is_ok(), "generator made an invalid config: {:?}", config.validate());
        let rendered = config.render();
        let parsed = Config::from_str_with_env(&rendered, Path::new("r.tsk"), &mammoth_config::EmptyEnv);
        prop_assert_eq!(parsed.map_err(|e| format!("{e}\n---\n{rendered}")), Ok(config));
    }
}
