//! `Config::render`: the resolved configuration as `.tsk` text, for `mammoth config check`.
//!
//! Sections come out as `[headers]`, maps of tables (projections, sagas) as `[a.b]` headers,
//! everything else as `key: value` lines. Secrets print as `"***"`.

use serde_json::Value as Json;

use super::Config;
use crate::parse::{quote, quote_key};

pub(crate) fn render(config: &Config) -> String {
    let mut out = String::from("# resolved mammoth configuration; secrets are shown as \"***\"\n");
    // Serialization of this plain data cannot fail; a `null` fallback keeps render panic-free.
    let json = serde_json::to_value(config).unwrap_or(Json::Null);
    if let Json::Object(sections) = json {
        for (name, value) in &sections {
            match value {
                Json::Object(map) => table(&mut out, &[quote_key(name)], map),
                other => out.push_str(&format!("{}: {}\n", quote_key(name), inline(other))),
            }
        }
    }
    out
}

fn table(out: &mut String, path: &[String], map: &serde_json::Map<String, Json>) {
    out.push_str(&format!("\n[{}]\n", path.join(".")));
    let is_sub_table = |v: &Json| matches!(v, Json::Object(m) if !m.is_empty());
    for (key, value) in map.iter().filter(|(_, v)| !is_sub_table(v)) {
        out.push_str(&format!("{}: {}\n", quote_key(key), inline(value)));
    }
    for (key, value) in map {
        match value {
            Json::Object(sub) if !sub.is_empty() => {
                let mut sub_path = path.to_vec();
                sub_path.push(quote_key(key));
                table(out, &sub_path, sub);
            }
            _ => {}
        }
    }
}

fn inline(value: &Json) -> String {
    match value {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => float(f),
            _ => n.to_string(),
        },
        Json::String(s) => quote(s),
        Json::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Json::Object(map) if map.is_empty() => "{}".to_owned(),
        Json::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", quote_key(k), inline(v)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
    }
}

/// A float as the grammar writes it: always a point before any exponent (`2.0`, `1.0e20`).
fn float(f: f64) -> String {
    let text = format!("{f:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if !mantissa.contains('.') => format!("{mantissa}.0e{exponent}"),
        Some(_) => text,
        None if text.contains('.') || !f.is_finite() => text,
        None => format!("{text}.0"),
    }
}
