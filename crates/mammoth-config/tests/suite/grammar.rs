//! The grammar's features: what parses, and into which tree.

use mammoth_config::{Value, ValueKind};

use super::{assert_error_at, config, doc, error};

fn get(text: &str, key: &str) -> ValueKind {
    let d = doc(text).unwrap_or_else(|e| panic!("{e}"));
    d.get(key)
        .map(Value::kind)
        .cloned()
        .unwrap_or_else(|| panic!("{key} missing in {text:?}"))
}

fn string(text: &str, key: &str) -> String {
    match get(text, key) {
        ValueKind::String(s) => s,
        other => panic!("{key} is {other:?}"),
    }
}

#[test]
fn header_dotted_keys_and_inline_objects_build_the_same_tree() {
    let forms = [
        "[message_bus]\nretry.max_attempts: 3\nretry.jitter: false\n",
        "[message_bus.retry]\nmax_attempts: 3\njitter: false\n",
        "message_bus.retry.max_attempts: 3\nmessage_bus.retry.jitter: false\n",
        "message_bus: { retry: { max_attempts: 3, jitter: false } }\n",
        "[message_bus]\nretry = { max_attempts = 3, jitter = false }\n",
    ];
    let configs: Vec<_> = forms
        .iter()
        .map(|f| config(f).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for (form, c) in forms.iter().zip(&configs) {
        assert_eq!(c.message_bus.retry.max_attempts, 3, "{form}");
        assert!(!c.message_bus.retry.jitter, "{form}");
        assert_eq!(c, &configs[0], "{form}");
    }
}

#[test]
fn parent_header_after_child_header_and_root_dotted_keys_merge() {
    let text = "snapshots.every: 200\n[a.b]\nx: 1\n[a]\ny: 2\n";
    assert_eq!(get(text, "a.b.x"), ValueKind::Int(1));
    assert_eq!(get(text, "a.y"), ValueKind::Int(2));
    assert_eq!(get(text, "snapshots.every"), ValueKind::Int(200));
}

#[test]
fn multi_line_arrays_and_objects_accept_newlines_comments_and_trailing_commas() {
    let text = "a: [\n  1,   # one\n  2\n  // two\n  3,\n]\no: {\n  x: 1\n  y: \"z\",\n}\n";
    match get(text, "a") {
        ValueKind::Array(items) => {
            let ints: Vec<_> = items.iter().map(|v| v.kind().clone()).collect();
            assert_eq!(
                ints,
                vec![ValueKind::Int(1), ValueKind::Int(2), ValueKind::Int(3)]
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(get(text, "o.y"), ValueKind::String("z".into()));
    let kinds = |text: &str| match get(text, "a") {
        ValueKind::Array(items) => items.iter().map(|v| v.kind().clone()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(kinds("a: [1, 2,]"), kinds("a: [1,\n2\n,]"));
    assert_eq!(get("a: []", "a"), ValueKind::Array(vec![]));
}

#[test]
fn comma_starting_a_line_may_only_close_the_list() {
    assert_error_at(&error("a: [1\n, 2]"), "E013", 2, 3);
}

#[test]
fn both_separators_trailing_semicolons_and_both_comment_styles_work() {
    let text = "# head\n// also a comment\na = 1;\nb: \"x\" ; # tail\nc: \"http://h//p\" // tail\n";
    assert_eq!(get(text, "a"), ValueKind::Int(1));
    assert_eq!(get(text, "b"), ValueKind::String("x".into()));
    assert_eq!(get(text, "c"), ValueKind::String("http://h//p".into()));
    assert_error_at(&error("a: 1;;"), "E013", 1, 6);
}

#[test]
fn literal_strings_keep_backslashes_and_basic_strings_unescape() {
    assert_eq!(string("p: 'C:\\dir\\n'", "p"), "C:\\dir\\n");
    let basic = "s: \"q\\\" b\\\\ n\\n t\\t r\\r z\\0 d\\${x} u\\u{1F600}\\u{e9}\"";
    assert_eq!(string(basic, "s"), "q\" b\\ n\n t\t r\r z\0 d${x} u😀é");
    assert_eq!(string("s: \"$HOME\"", "s"), "$HOME");
}

#[test]
fn multiline_strings_drop_the_first_newline_and_keep_inner_quotes() {
    let text = "s: \"\"\"\nline one\r\n  \"quoted\" \\t\nend\"\"\"\"\n";
    assert_eq!(string(text, "s"), "line one\n  \"quoted\" \t\nend\"");
    assert_eq!(string("s: \"\"\"inline\"\"\"", "s"), "inline");
}

#[test]
fn quoted_keys_may_hold_dots_and_spaces() {
    let text = "a.\"b.c\": 1\n[projections]\n\"order summary\".batch_size: 5\n";
    let d = doc(text).unwrap_or_else(|e| panic!("{e}"));
    let a = d.root().lookup(["a", "b.c"]).map(Value::kind);
    assert_eq!(a, Some(&ValueKind::Int(1)));
    let p = d
        .root()
        .lookup(["projections", "order summary", "batch_size"])
        .map(Value::kind);
    assert_eq!(p, Some(&ValueKind::Int(5)));
}

#[test]
fn scalars_cover_the_integer_and_float_forms() {
    assert_eq!(get("n: -0", "n"), ValueKind::Int(0));
    assert_eq!(
        get("n: -9223372036854775808", "n"),
        ValueKind::Int(i64::MIN)
    );
    assert_eq!(get("n: 9223372036854775807", "n"), ValueKind::Int(i64::MAX));
    assert_eq!(get("f: 2.0", "f"), ValueKind::Float(2.0));
    assert_eq!(get("f: -0.25", "f"), ValueKind::Float(-0.25));
    assert_eq!(get("f: 1.5e3", "f"), ValueKind::Float(1500.0));
    assert_eq!(get("f: 1.0E-2", "f"), ValueKind::Float(0.01));
    assert_eq!(get("b: false", "b"), ValueKind::Bool(false));
    assert_eq!(get("z: null", "z"), ValueKind::Null);
    assert_error_at(&error("f: 1.0e999"), "E010", 1, 4);
}

#[test]
fn crlf_files_parse_like_lf_and_report_the_same_columns() {
    let lf = "[app]\nname: \"orders\"\nenvironment: \"prod\"\n";
    assert_eq!(config(&lf.replace('\n', "\r\n")).ok(), config(lf).ok());
    let err = error("[app]\r\nname: orders\r\n");
    assert_error_at(&err, "E003", 2, 7);
    assert!(!err.to_string().contains('\r'));
}

#[test]
fn byte_order_mark_is_skipped_and_columns_start_after_it() {
    assert_eq!(
        config("\u{feff}[app]\nname: \"x\"")
            .map(|c| c.app.name)
            .ok(),
        Some("x".into())
    );
    assert_error_at(&error("\u{feff}name: x"), "E003", 1, 7);
}

#[test]
fn columns_count_characters_not_bytes() {
    let err = error("a: \"ééé\" b");
    assert_error_at(&err, "E013", 1, 10);
}

#[test]
fn lone_carriage_return_is_refused() {
    assert_error_at(&error("a: 1\rb: 2"), "E013", 1, 5);
}

#[test]
fn empty_and_comment_only_files_are_the_defaults() {
    assert_eq!(config("").ok(), Some(mammoth_config::Config::default()));
    assert_eq!(
        config("# nothing\n\n   // here\n").ok(),
        Some(mammoth_config::Config::default())
    );
}

#[test]
fn values_keep_their_positions_and_operator_values_sit_at_the_at_sign() {
    let d = doc("[app]\n  name: \"x\"\nlist: [1,\n  2]\n").unwrap_or_else(|e| panic!("{e}"));
    let name = d.get("app.name").map(Value::span).map(|s| (s.line, s.col));
    assert_eq!(name, Some((2, 9)));
    let entry = d
        .root()
        .lookup_entry(&["app", "name"])
        .map(|e| (e.key_span().line, e.key_span().col));
    assert_eq!(entry, Some((2, 3)));
    let second = match d.get("app.list").map(Value::kind) {
        Some(ValueKind::Array(items)) => items.get(1).map(|v| (v.span().line, v.span().col)),
        _ => None,
    };
    assert_eq!(second, Some((4, 3)));
}

#[test]
fn caret_line_copies_tabs_so_it_lines_up_under_the_column() {
    let err = error("[app]\n\tname: orders\n");
    assert_error_at(&err, "E003", 2, 8);
    assert!(err.to_string().contains("\n  | \t      ^"), "{err}");
}
