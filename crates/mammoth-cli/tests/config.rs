//! `mammoth config check` and configuration errors as every command reports them.

mod support;

use support::Sandbox;

#[test]
fn config_check_prints_the_resolved_configuration_with_secrets_as_stars() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "prod.tsk",
        "[event_store]\nbackend: \"sqlite\"\nsynchronous: \"normal\"\n\n[security]\nencryption_key: @env.secure(\"MAMMOTH_TEST_KEY\")\napi_tokens: [@env.secure(\"MAMMOTH_TEST_TOKEN\")]\n",
    );
    let mut command = sandbox.command(&["config", "check", "prod.tsk"]);
    command
        .env("MAMMOTH_TEST_KEY", "key-that-must-not-print")
        .env("MAMMOTH_TEST_TOKEN", "token-that-must-not-print");
    let run = support::run(command);
    let text = run.ok();
    assert!(text.contains("prod.tsk"), "names the file: {text}");
    assert!(text.contains("synchronous: \"normal\""), "{text}");
    assert!(text.contains("encryption_key: \"***\""), "{text}");
    assert!(
        !text.contains("must-not-print"),
        "a secret was printed: {text}"
    );

    let mut command = sandbox.command(&["config", "check", "prod.tsk", "--json"]);
    command
        .env("MAMMOTH_TEST_KEY", "key-that-must-not-print")
        .env("MAMMOTH_TEST_TOKEN", "token-that-must-not-print");
    let run = support::run(command);
    assert!(!run.stdout.contains("must-not-print"));
    let json = run.json();
    assert_eq!(json["config"]["security"]["encryption_key"], "***");
    assert_eq!(json["config"]["security"]["api_tokens"][0], "***");
    assert_eq!(json["config"]["event_store"]["synchronous"], "normal");
}

#[test]
fn config_check_without_a_path_uses_the_working_directory_file_or_mammoth_config() {
    let sandbox = Sandbox::new();
    let local = sandbox.run(&["config", "check"]);
    assert!(local.ok().contains("mammoth.tsk"), "{local:#?}");

    sandbox.write("other.tsk", "[app]\nname: \"from-env\"\n");
    let mut command = sandbox.command(&["config", "check"]);
    command.env("MAMMOTH_CONFIG", "other.tsk");
    let run = support::run(command);
    assert!(run.ok().contains("name: \"from-env\""), "{run:#?}");
}

#[test]
fn a_config_error_shows_file_line_and_column_the_source_line_and_a_caret() {
    let sandbox = Sandbox::new();
    sandbox.write("broken.tsk", "[event_store]\nbackend: redis\n");
    let run = sandbox.run(&["config", "check", "broken.tsk"]);
    let stderr = run.failed_with(2);
    assert!(stderr.contains("broken.tsk:2:10: error[E003]"), "{stderr}");
    assert!(stderr.contains("2 | backend: redis"), "{stderr}");
    let caret_line = stderr
        .lines()
        .find(|line| line.trim_end().ends_with('^'))
        .expect("caret");
    assert_eq!(
        caret_line.find('^'),
        stderr
            .lines()
            .find(|l| l.contains("backend: redis"))
            .unwrap()
            .find("redis")
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn every_command_refuses_a_broken_configuration_with_exit_2() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mammoth.tsk",
        "[event_store]\nbackend: \"sqlite\"\nbakcend: \"x\"\n",
    );
    let run = sandbox.run(&["events", "stats"]);
    let stderr = run.failed_with(2);
    assert!(stderr.contains("mammoth.tsk:3:1"), "{stderr}");
    let missing = sandbox.run(&["--config", "nowhere.tsk", "events", "read", "order-1"]);
    assert!(
        missing.failed_with(2).contains("nowhere.tsk"),
        "{missing:#?}"
    );
    assert!(
        !sandbox.path().join("store").exists(),
        "no store was opened"
    );
}
