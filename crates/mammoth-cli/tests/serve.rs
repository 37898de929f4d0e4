//! `mammoth serve` as a user runs it: it prints where it listens, serves the orders app over
//! HTTP with its saga, relay and bus workers running, and on SIGTERM exits 0 with the
//! projection's checkpoint saved.

mod support;

use support::{Sandbox, serve_runs_the_order_app, service_url, suffix};

#[cfg(unix)]
#[test]
fn serve_runs_the_whole_app_answers_commands_and_queries_and_sigterm_exits_with_the_checkpoint_saved()
 {
    serve_runs_the_order_app(&Sandbox::new());
}

#[cfg(unix)]
#[test]
fn serve_runs_the_order_saga_with_its_bus_on_nats() {
    let Some(url) = service_url("MAMMOTH_TEST_NATS_URL") else {
        return;
    };
    let sandbox = Sandbox::new();
    let suffix = suffix();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"nats\"\nurl: \"{url}\"\nstream: \"MSERVE_{suffix}\"\nsubject_prefix: \"mserve{suffix}\"\n"
        ),
    );
    serve_runs_the_order_app(&sandbox);
}

#[cfg(unix)]
#[test]
fn serve_runs_the_order_saga_with_its_bus_on_redis() {
    let Some(url) = service_url("MAMMOTH_TEST_REDIS_URL") else {
        return;
    };
    let sandbox = Sandbox::new();
    let suffix = suffix();
    sandbox.write(
        "mammoth.tsk",
        &format!(
            "[event_store]\nbackend: \"sqlite\"\ndsn: \"sqlite://./store/events.db\"\n[message_bus]\nbackend: \"redis\"\nurl: \"{url}\"\nqueue_prefix: \"mserve{suffix}:\"\n"
        ),
    );
    serve_runs_the_order_app(&sandbox);
}
