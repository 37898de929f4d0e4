//! E001–E010, E013 and E014: each code at its exact `line:col`, with its caret and message.

use super::{assert_error_at, col_of, error};

#[test]
fn go_operator_is_refused_with_the_code_running_hint() {
    let err = error("[event_store]\ndsn: @go(\"db\")\n");
    assert_error_at(&err, "E001", 2, 6);
    let d = err.diagnostic();
    assert_eq!(
        d.message(),
        "unsupported operator `@go`; allowed: @env, @env.secure, @file, @file.secure"
    );
    assert!(
        d.help()
            .unwrap_or("")
            .contains("code-running operators are never supported; name a built-in backend")
    );
}

#[test]
fn php_and_query_get_the_code_running_hint_but_date_does_not() {
    for op in ["@php(\"x\")", "@query(\"SELECT 1\")"] {
        let err = error(&format!("a: {op}"));
        assert_error_at(&err, "E001", 1, 4);
        assert!(
            err.to_string()
                .contains("code-running operators are never supported"),
            "{op}"
        );
    }
    let err = error("when: @date(\"Y\")");
    assert_error_at(&err, "E001", 1, 7);
    assert!(!err.to_string().contains("code-running"));
}

#[test]
fn dotted_unknown_operator_is_named_in_full() {
    let err = error("x: @x.tsk.get(\"a\")");
    assert_error_at(&err, "E001", 1, 4);
    assert!(
        err.diagnostic()
            .message()
            .starts_with("unsupported operator `@x.tsk.get`")
    );
}

#[test]
fn operator_in_key_position_is_unsupported_or_misplaced() {
    assert_error_at(&error("@if(x): 1"), "E001", 1, 1);
    assert_error_at(&error("@env(\"X\"): 1"), "E013", 1, 1);
}

#[test]
fn variables_are_refused_as_values_and_as_keys() {
    let err = error("name: $app_name");
    assert_error_at(&err, "E002", 1, 7);
    assert_eq!(err.diagnostic().message(), "variables are not supported");
    assert_error_at(&error("[app]\n$name: \"x\""), "E002", 2, 1);
}

#[test]
fn bare_word_value_is_an_unquoted_string_with_the_quoted_fix() {
    let err = error("[message_bus]\nbackend: redis   # the bus\n");
    assert_error_at(&err, "E003", 2, 10);
    assert_eq!(
        err.diagnostic().message(),
        "unquoted string; write `\"redis\"`"
    );
}

#[test]
fn unquoted_url_and_duration_suggest_the_whole_text_quoted() {
    let err = error("url: nats://nats:4222");
    assert_error_at(&err, "E003", 1, 6);
    assert!(
        err.diagnostic()
            .message()
            .contains("`\"nats://nats:4222\"`")
    );
    let err = error("timeout: 100ms");
    assert_error_at(&err, "E003", 1, 10);
    assert!(err.diagnostic().message().contains("`\"100ms\"`"));
    assert_error_at(&error("listen: 0.0.0.0:8080"), "E003", 1, 9);
}

#[test]
fn capitalised_or_yes_no_booleans_point_to_true_and_false() {
    for (word, fix) in [
        ("TRUE", "true"),
        ("yes", "true"),
        ("False", "false"),
        ("off", "false"),
    ] {
        let err = error(&format!("enabled: {word}"));
        assert_error_at(&err, "E003", 1, 10);
        assert!(
            err.diagnostic()
                .message()
                .contains("booleans are `true`/`false`"),
            "{word}"
        );
        assert!(
            err.diagnostic()
                .help()
                .unwrap_or("")
                .contains(&format!("`{fix}`")),
            "{word}"
        );
    }
}

#[test]
fn tusklang_blocks_are_refused_at_the_brace_or_angle() {
    let err = error("server {\n  port: 1\n}");
    assert_error_at(&err, "E004", 1, 8);
    assert!(
        err.diagnostic()
            .message()
            .contains("use `[server]` or `server: { … }`")
    );
    assert_error_at(&error("server >\n"), "E004", 1, 8);
    assert_error_at(&error("a: 1\n<\n"), "E004", 2, 1);
}

#[test]
fn expressions_are_refused_at_their_operator() {
    let cases = [
        ("ports: 8000-9000", "-"),
        ("max: 1 + 2", "+"),
        ("debug: true ? 1 : 2", "?"),
        ("env: \"prod\" == \"x\"", "="),
        ("x: [1, 2 * 3]", "*"),
    ];
    for (line, op) in cases {
        let err = error(line);
        assert_error_at(&err, "E005", 1, col_of(line, op));
        assert!(
            err.diagnostic()
                .message()
                .starts_with("expressions are not supported"),
            "{line}"
        );
    }
}

#[test]
fn interpolation_in_a_string_points_at_the_dollar() {
    let line = "greeting: \"hello ${name}\"";
    let err = error(line);
    assert_error_at(&err, "E006", 1, col_of(line, "$"));
    assert!(
        err.diagnostic()
            .message()
            .contains("no interpolation; write `\\${`")
    );
    assert_error_at(&error("t: \"\"\"\nabc ${x}\n\"\"\""), "E006", 2, 5);
}

#[test]
fn operator_written_inside_quotes_asks_to_remove_them() {
    let err = error("host: \"@env('DB_HOST')\"");
    assert_error_at(&err, "E007", 1, 7);
    assert!(err.diagnostic().message().contains("remove the quotes"));
    assert_error_at(&error("k: '@file.secure(\"x\")'"), "E007", 1, 4);
}

#[test]
fn duplicate_key_names_the_first_definition() {
    let err = error("[app]\nname: \"a\"\nname: \"b\"\n");
    assert_error_at(&err, "E008", 3, 1);
    assert!(
        err.diagnostic()
            .message()
            .contains("`app.name` is already defined at 2:1")
    );
}

#[test]
fn duplicate_section_and_header_equivalent_keys_are_redefinitions() {
    let err = error("[app]\nname: \"a\"\n[app]\n");
    assert_error_at(&err, "E008", 3, 2);
    assert!(
        err.diagnostic()
            .message()
            .contains("already defined at 1:2")
    );
    let text = "[message_bus]\nretry.max_attempts: 3\n[message_bus.retry]\nmax_attempts: 4\n";
    let err = error(text);
    assert_error_at(&err, "E008", 4, 1);
    assert!(err.diagnostic().message().contains("at 2:7"));
}

#[test]
fn scalar_then_table_and_closed_inline_tables_clash() {
    let err = error("a: 1\na.b: 2");
    assert_error_at(&err, "E008", 2, 1);
    assert!(
        err.diagnostic()
            .message()
            .contains("already defined at 1:1 as an integer")
    );
    assert_error_at(&error("r: { x: 1 }\nr.y: 2"), "E008", 2, 1);
    assert_error_at(&error("r: { x: 1 }\n[r]"), "E008", 2, 2);
    assert_error_at(&error("a: { b: 1, b: 2 }"), "E008", 1, 12);
}

#[test]
fn unterminated_string_points_at_its_opening_quote() {
    let err = error("[app]\nname: \"orders\n");
    assert_error_at(&err, "E009", 2, 7);
    assert_eq!(err.diagnostic().message(), "unterminated string");
    assert_error_at(&error("a: 'abc"), "E009", 1, 4);
    assert_error_at(&error("a: \"\"\"abc\n\ndef"), "E009", 1, 4);
}

#[test]
fn unterminated_brackets_point_at_the_opening_bracket() {
    assert_error_at(&error("a: [1, 2"), "E009", 1, 4);
    assert_error_at(&error("a: [\n  1,\n  2\nb: 3\n"), "E009", 1, 4);
    assert_error_at(&error("a: {\n  x: 1\n[next]\n"), "E009", 1, 4);
    assert_error_at(&error("[abc\n"), "E009", 1, 1);
    assert_error_at(&error("a: @env(\"X\"\n"), "E009", 1, 8);
}

#[test]
fn bad_escape_and_block_comment_are_lexical_errors() {
    let line = "p: \"C:\\qpath\"";
    let err = error(line);
    assert_error_at(&err, "E009", 1, col_of(line, "\\"));
    assert!(err.diagnostic().message().contains("unknown escape `\\q`"));
    assert_error_at(&error("p: \"\\u{110000}\""), "E009", 1, 5);
    assert_error_at(&error("/* old */\na: 1"), "E009", 1, 1);
    assert_error_at(&error("a: 1 /* c */"), "E009", 1, 6);
}

#[test]
fn number_forms_outside_the_grammar_are_refused() {
    for text in [
        "0xFF",
        "0o17",
        "0b101",
        "+1",
        "007",
        "1.",
        "9223372036854775808",
        "1e5",
        "1_000",
    ] {
        let err = error(&format!("n: {text}"));
        assert_error_at(&err, "E010", 1, 4);
    }
    assert_error_at(&error("n: .5"), "E010", 1, 4);
}

#[test]
fn missing_separator_stray_comma_and_stray_bracket_are_syntax_errors() {
    assert_error_at(&error("name \"x\""), "E013", 1, 6);
    assert_error_at(&error("a: 1, b: 2"), "E013", 1, 5);
    assert_error_at(&error("}"), "E013", 1, 1);
    assert_error_at(&error("a: [1,,2]"), "E013", 1, 7);
    assert_error_at(&error("a:"), "E013", 1, 3);
    assert_error_at(&error("a . b: 1"), "E013", 1, 3);
    assert_error_at(&error("[[servers]]"), "E013", 1, 1);
}

#[test]
fn comment_glued_to_a_value_is_refused() {
    let err = error("a: 1# note");
    assert_error_at(&err, "E013", 1, 5);
    assert!(err.diagnostic().message().contains("space before"));
}

#[test]
fn nesting_of_thirty_two_is_accepted_and_thirty_three_refused() {
    // `x` itself is level 1, so 32 brackets reach level 32 and the 33rd bracket is too deep.
    let ok = format!("x: {}{}", "[".repeat(32), "]".repeat(32));
    assert!(super::doc(&ok).is_ok());
    let deep = format!("x: {}{}", "[".repeat(33), "]".repeat(33));
    assert_error_at(&super::doc(&deep).unwrap_err(), "E014", 1, 36);
    let objects = format!("x: {}1{}", "{a: ".repeat(33), "}".repeat(33));
    assert_eq!(super::doc(&objects).unwrap_err().code().as_str(), "E014");
    // 33 keys make 32 tables and a scalar leaf; 34 keys make a 33rd table.
    let keys: Vec<String> = (0..34).map(|i| format!("k{i}")).collect();
    assert!(super::doc(&format!("{}: 1", keys[..33].join("."))).is_ok());
    let err = super::doc(&format!("{}: 1", keys.join("."))).unwrap_err();
    assert_eq!(err.code().as_str(), "E014");
}

#[test]
fn files_over_one_mebibyte_are_refused_and_exactly_one_is_read() {
    let limit = mammoth_config::MAX_FILE_BYTES;
    let mut exact = "# pad\n".repeat(limit / 6);
    exact.push_str(&"x".repeat(limit - exact.len()));
    exact.replace_range(exact.len() - 10.., "\nz: true\n\n");
    assert_eq!(exact.len(), limit);
    assert!(super::doc(&exact).is_ok());
    let err = super::doc(&format!("{exact} ")).unwrap_err();
    assert_eq!(err.code().as_str(), "E014");
    assert!(err.to_string().contains("limit is 1 MiB"));
}

#[test]
fn invalid_utf8_is_reported_at_the_first_bad_byte() {
    let bytes = b"a: 1\nb: \"\xff\"\n";
    let err = mammoth_config::Document::parse_bytes(
        bytes,
        std::path::Path::new(super::PATH),
        &mammoth_config::EmptyEnv,
    )
    .unwrap_err();
    assert_eq!(err.code().as_str(), "E014");
    assert_eq!(err.span().map(|s| (s.line, s.col)), Some((2, 5)));
}

#[test]
fn printed_error_has_header_source_line_caret_and_help() {
    let err = error("[message_bus]\nbackend: redis\n");
    let expected = "test.tsk:2:10: error[E003]: unquoted string; write `\"redis\"`\n  |\n2 | backend: redis\n  |          ^\n  = help: text values are always quoted; `true`, `false` and `null` are the only bare words";
    assert_eq!(err.to_string(), expected);
}
