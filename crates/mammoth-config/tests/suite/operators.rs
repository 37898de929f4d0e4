//! `@env`, `@env.secure`, `@file`, `@file.secure`: resolution, E011/E012, and secrets that
//! never print.

use std::collections::HashMap;
use std::path::Path;

use mammoth_config::{Config, Document, ValueKind};

use super::{assert_error_at, config_env, doc};

const SECRET: &str = "s3cr3t-value-never-printed";

fn env_map(env: &[(&str, &str)]) -> HashMap<String, String> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn value(text: &str, env: &[(&str, &str)], key: &str) -> ValueKind {
    let d = Document::parse(text, Path::new(super::PATH), &env_map(env))
        .unwrap_or_else(|e| panic!("{e}"));
    d.get(key)
        .map(|v| v.kind().clone())
        .unwrap_or_else(|| panic!("{key} missing"))
}

fn env_error(text: &str, env: &[(&str, &str)]) -> mammoth_config::ConfigError {
    Document::parse(text, Path::new(super::PATH), &env_map(env)).expect_err("an error")
}

#[test]
fn env_reads_a_string_and_an_empty_variable_counts_as_set() {
    assert_eq!(
        value("h: @env(\"HOST\")", &[("HOST", "db")], "h"),
        ValueKind::String("db".into())
    );
    let empty = value("h: @env(\"HOST\", \"fallback\")", &[("HOST", "")], "h");
    assert_eq!(empty, ValueKind::String(String::new()));
}

#[test]
fn unset_env_without_default_is_e011_naming_the_variable() {
    let err = env_error("[app]\nname: @env(\"APP_NAME\")", &[]);
    assert_error_at(&err, "E011", 2, 7);
    assert!(err.diagnostic().message().contains("`APP_NAME` is not set"));
}

#[test]
fn defaults_of_each_type_apply_when_unset_and_force_the_parse_when_set() {
    let none: &[(&str, &str)] = &[];
    let cases: [(&str, &str, ValueKind, ValueKind); 5] = [
        (
            "\"dev\"",
            "prod",
            ValueKind::String("dev".into()),
            ValueKind::String("prod".into()),
        ),
        ("6379", " 6380 ", ValueKind::Int(6379), ValueKind::Int(6380)),
        ("2.5", "0.5", ValueKind::Float(2.5), ValueKind::Float(0.5)),
        (
            "true",
            "false",
            ValueKind::Bool(true),
            ValueKind::Bool(false),
        ),
        (
            "null",
            "text",
            ValueKind::Null,
            ValueKind::String("text".into()),
        ),
    ];
    for (default, set, unset_value, set_value) in cases {
        let text = format!("v: @env(\"V\", {default})");
        assert_eq!(value(&text, none, "v"), unset_value, "{default} unset");
        assert_eq!(
            value(&text, &[("V", set)], "v"),
            set_value,
            "{default} set to {set:?}"
        );
    }
}

#[test]
fn env_text_not_of_the_defaults_type_is_e012_without_echoing_it() {
    for (default, bad) in [
        ("6379", "six"),
        ("2.5", "NaN"),
        ("true", "maybe"),
        ("1", ""),
    ] {
        let err = env_error(&format!("v: @env(\"PORT\", {default})"), &[("PORT", bad)]);
        assert_error_at(&err, "E012", 1, 4);
        let shown = err.to_string();
        assert!(shown.contains("`PORT`"), "{shown}");
        if !bad.is_empty() {
            assert!(!shown.contains(bad), "value leaked: {shown}");
        }
    }
}

#[test]
fn secure_operators_refuse_a_default_with_e012() {
    let line = "k: @env.secure(\"KEY\", \"dev\")";
    let err = env_error(line, &[("KEY", "x")]);
    assert_error_at(&err, "E012", 1, super::col_of(line, "\"dev\""));
    assert_error_at(
        &env_error("k: @file.secure(\"f\", \"x\")", &[]),
        "E012",
        1,
        22,
    );
}

#[test]
fn env_name_must_be_an_identifier_in_double_quotes() {
    assert_error_at(&env_error("k: @env(\"A-B\")", &[]), "E013", 1, 9);
    let err = env_error("k: @env('A')", &[]);
    assert_error_at(&err, "E013", 1, 9);
    assert!(err.diagnostic().message().contains("double quotes"));
}

#[test]
fn unset_secure_variable_is_e011_and_says_no_default_is_possible() {
    let err = env_error("k: @env.secure(\"EVENT_KEY\")", &[]);
    assert_error_at(&err, "E011", 1, 4);
    assert!(err.to_string().contains("`EVENT_KEY`"));
    assert!(err.diagnostic().help().unwrap_or("").contains("no default"));
}

#[test]
fn env_secure_value_never_shows_in_debug_display_render_json_or_errors() {
    let text =
        "[security]\nencryption_key: @env.secure(\"KEY\")\napi_tokens: [@env.secure(\"KEY\")]\n";
    let config = config_env(text, &[("KEY", SECRET)]).unwrap_or_else(|e| panic!("{e}"));
    let key = config
        .security
        .encryption_key
        .as_ref()
        .map(|k| k.expose().as_str());
    assert_eq!(key, Some(SECRET));
    assert_eq!(
        config
            .security
            .api_tokens
            .first()
            .map(|t| t.expose().as_str()),
        Some(SECRET)
    );
    for shown in [
        format!("{config:?}"),
        config.render(),
        config.to_json(),
        format!("{}", config.security.api_tokens[0]),
        format!("{:?}", doc_with_secret()),
    ] {
        assert!(!shown.contains(SECRET), "secret leaked: {shown}");
    }
    assert!(config.render().contains("encryption_key: \"***\""));
    assert!(config.to_json().contains("\"***\""));
}

fn doc_with_secret() -> Document {
    Document::parse(
        "k: @env.secure(\"KEY\")",
        Path::new(super::PATH),
        &[("KEY", SECRET)],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn secret_into_a_plain_string_field_is_refused_without_showing_it() {
    let err =
        config_env("[app]\nname: @env.secure(\"KEY\")", &[("KEY", SECRET)]).expect_err("refused");
    assert_error_at(&err, "E017", 2, 7);
    let shown = err.to_string();
    assert!(
        shown.contains("`app.name`") && shown.contains("secret field"),
        "{shown}"
    );
    assert!(!shown.contains(SECRET));
    let err = config_env(
        "[event_store]\npool_size: @env.secure(\"KEY\")",
        &[("KEY", "12")],
    );
    assert_eq!(err.map_err(|e| e.code().as_str()).err(), Some("E017"));
}

#[test]
fn plain_string_may_fill_a_secret_field() {
    let config =
        super::config("[security]\nencryption_key: \"plain\"").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.security.encryption_key.map(|k| k.expose().clone()),
        Some("plain".into())
    );
}

#[test]
fn operator_syntax_inside_a_longer_string_is_just_text() {
    let v = value("s: \"use @env(X) here\"", &[("X", "no")], "s");
    assert_eq!(v, ValueKind::String("use @env(X) here".into()));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{e}"));
}

fn parse_in(dir: &Path, text: &str) -> Result<Document, mammoth_config::ConfigError> {
    Document::parse(text, &dir.join("config/app.tsk"), &mammoth_config::EmptyEnv)
}

#[test]
fn file_is_relative_to_the_config_directory_and_loses_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "config/name.txt", b"orders\n\n");
    write(dir.path(), "secrets/key", b"k3y\r\n");
    let d = parse_in(
        dir.path(),
        "a: @file(\"name.txt\")\nb: @file('../secrets/key')",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.get("a").map(|v| v.kind().clone()),
        Some(ValueKind::String("orders\n".into()))
    );
    assert_eq!(
        d.get("b").map(|v| v.kind().clone()),
        Some(ValueKind::String("k3y".into()))
    );
}

#[test]
fn file_of_exactly_64_kib_is_read_and_one_byte_more_is_e011() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "config/ok", &vec![b'a'; 64 * 1024]);
    write(dir.path(), "config/big", &vec![b'a'; 64 * 1024 + 1]);
    assert!(parse_in(dir.path(), "a: @file(\"ok\")").is_ok());
    let err = parse_in(dir.path(), "a: @file(\"big\")").expect_err("too big");
    assert_eq!(err.code().as_str(), "E011");
    assert!(err.to_string().contains("larger than 64 KiB"));
}

#[test]
fn missing_directory_or_non_utf8_file_is_e011_naming_the_path() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(dir.path(), "config/bin", &[0xff, 0xfe, b'x']);
    std::fs::create_dir_all(dir.path().join("config/sub")).unwrap_or_else(|e| panic!("{e}"));
    for (text, fragment) in [
        ("a: @file.secure(\"nope.creds\")", "`nope.creds`"),
        ("a: @file(\"sub\")", "not a regular file"),
        ("a: @file.secure(\"bin\")", "not UTF-8"),
    ] {
        let err = parse_in(dir.path(), text).expect_err(text);
        assert_eq!(err.code().as_str(), "E011", "{text}");
        assert_eq!(err.span().map(|s| s.col), Some(4), "{text}");
        assert!(err.to_string().contains(fragment), "{text}: {err}");
    }
}

#[test]
fn file_secure_produces_a_secret_that_only_expose_reveals() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write(
        dir.path(),
        "config/key.b64",
        format!("{SECRET}\n").as_bytes(),
    );
    let text = "[security]\nencryption_key: @file.secure(\"key.b64\")\n";
    let path = dir.path().join("config/app.tsk");
    let config = Config::from_str_with_env(text, &path, &mammoth_config::EmptyEnv)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = config.security.encryption_key.clone().unwrap_or_default();
    assert_eq!(key.expose(), SECRET);
    assert_eq!(format!("{key} {key:?}"), "*** ***");
    assert!(!config.render().contains(SECRET) && !format!("{config:?}").contains(SECRET));
}

#[test]
fn unterminated_or_misused_operator_arguments_are_reported() {
    assert_error_at(&doc("a: @env").expect_err("no paren"), "E013", 1, 8);
    assert_error_at(
        &doc("a: @file(\"x\", \"y\")").expect_err("two args"),
        "E013",
        1,
        15,
    );
    assert_error_at(
        &doc("a: @env(\"X\", [1])").expect_err("array default"),
        "E013",
        1,
        14,
    );
    assert_error_at(&doc("a: @env(\"X\" x)").expect_err("junk"), "E013", 1, 13);
}
