//! Checks beyond types: ranges and consistency, each reported at the offending key.

use super::{Config, MessageBusBackend, bus_policy};
use crate::document::Document;
use crate::error::{ConfigError, ErrorCode};
use crate::parse::quote_key;

/// One invalid value: its key path, what is wrong, and the fix.
pub(crate) struct Violation {
    keys: Vec<String>,
    message: String,
    help: String,
}

impl Violation {
    fn new(keys: &[&str], message: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// The error, placed at the key (or its nearest written ancestor) in `doc`.
    pub(crate) fn into_error(self, doc: &Document) -> ConfigError {
        let name: Vec<String> = self.keys.iter().map(|k| quote_key(k)).collect();
        let message = format!("`{}`: {}", name.join("."), self.message);
        let span = doc.key_span(&self.keys);
        let mut diagnostic = doc.diagnostic(ErrorCode::InvalidValue, span, message);
        diagnostic.set_help(Some(self.help));
        ConfigError::new(diagnostic)
    }
}

fn at_least_one(out: &mut Vec<Violation>, keys: &[&str], value: u64) {
    if value == 0 {
        out.push(Violation::new(
            keys,
            "must be at least 1",
            "write 1 or more",
        ));
    }
}

/// Every violation, in section order.
pub(crate) fn violations(config: &Config) -> Vec<Violation> {
    let mut out = Vec::new();
    let store = &config.event_store;
    at_least_one(
        &mut out,
        &["event_store", "pool_size"],
        u64::from(store.pool_size),
    );
    at_least_one(
        &mut out,
        &["event_store", "max_event_size"],
        store.max_event_size,
    );
    let per_append = u64::from(store.max_events_per_append);
    at_least_one(
        &mut out,
        &["event_store", "max_events_per_append"],
        per_append,
    );
    if let Err(problem) = store.url() {
        out.push(Violation::new(
            &["event_store", problem.key],
            problem.message,
            problem.help,
        ));
    }

    let bus = &config.message_bus;
    let retry = &bus.retry;
    at_least_one(
        &mut out,
        &["message_bus", "retry", "max_attempts"],
        u64::from(retry.max_attempts),
    );
    if !(retry.multiplier.is_finite() && retry.multiplier >= 1.0) {
        out.push(Violation::new(
            &["message_bus", "retry", "multiplier"],
            format!("must be at least 1.0, found {}", retry.multiplier),
            "write a factor such as 2.0; 1.0 keeps the delay constant",
        ));
    }
    if retry.base_delay > retry.max_delay {
        out.push(Violation::new(
            &["message_bus", "retry", "base_delay"],
            "is longer than `max_delay`",
            "make `base_delay` at most `max_delay`",
        ));
    }
    if !bus.dead_letter.enabled {
        out.push(Violation::new(
            &["message_bus", "dead_letter", "enabled"],
            bus_policy::DEAD_LETTER_DISABLED,
            bus_policy::DEAD_LETTER_HELP,
        ));
    }
    for (keys, reason) in bus_policy::bad_topics(bus) {
        let mut path = vec!["message_bus", "topics"];
        path.extend(keys.iter().map(String::as_str));
        out.push(Violation::new(
            &path,
            reason,
            "rename the topic; the outbox relay publishes to it by this name",
        ));
    }
    if bus.backend == MessageBusBackend::Embedded && (bus.url.is_some() || bus.host.is_some()) {
        out.push(Violation::new(
            &["message_bus", "backend"],
            "the embedded bus takes no `url` or `host`",
            "set `backend: \"nats_jetstream\"` or `\"redis\"`, or remove `url`/`host`",
        ));
    }

    for (name, projection) in &config.projections {
        let batch = u64::from(projection.batch_size);
        at_least_one(&mut out, &["projections", name, "batch_size"], batch);
    }
    for (name, saga) in &config.sagas {
        if saga
            .timeout
            .zip(saga.step_timeout)
            .is_some_and(|(total, step)| step > total)
        {
            out.push(Violation::new(
                &["sagas", name, "step_timeout"],
                "is longer than the saga's `timeout`",
                "make `step_timeout` at most `timeout`",
            ));
        }
    }

    let listen = &config.http.listen;
    let port_ok = listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        out.push(Violation::new(
            &["http", "listen"],
            "is not a `host:port` address",
            "write an address such as \"127.0.0.1:8080\" or \"0.0.0.0:8080\"",
        ));
    }
    at_least_one(&mut out, &["http", "body_limit"], config.http.body_limit);
    if !config.metrics.path.starts_with('/') {
        out.push(Violation::new(
            &["metrics", "path"],
            "must start with `/`",
            "write a path such as \"/metrics\"",
        ));
    }
    out
}
