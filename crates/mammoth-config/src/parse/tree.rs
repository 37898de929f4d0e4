//! Placing values in the tree, and refusing every redefinition (E008).
//!
//! `[a.b]` headers, dotted keys and inline objects all build nested tables. A table made by a
//! dotted key or as the parent of a header stays open to more keys; a `[header]` may appear
//! once; an inline `{ … }` is closed once written. A key defined twice, or used both as a value
//! and as a table, is an error naming the first definition's position.

use super::{KeySeg, MAX_DEPTH, PResult, Src, dotted};
use crate::error::{Diagnostic, ErrorCode};
use crate::value::{Table, TableOrigin, Value, ValueKind};

fn redefinition(src: &Src<'_>, key: &KeySeg, message: String, help: &str) -> Box<Diagnostic> {
    src.err_help(ErrorCode::Redefinition, key.span, message, help)
}

/// Walks `keys` from `table` (at nesting `level`), creating open tables where missing.
fn descend<'t>(
    mut table: &'t mut Table,
    keys: &[KeySeg],
    level: usize,
    src: &Src<'_>,
) -> PResult<&'t mut Table> {
    for (i, key) in keys.iter().enumerate() {
        let here = level.saturating_add(i).saturating_add(1);
        let name = dotted(keys.get(..=i).unwrap_or(keys));
        if table.get(&key.name).is_none() {
            if here > MAX_DEPTH {
                return Err(depth_error(src, key));
            }
            let open = Value::new(
                ValueKind::Table(Table::new(TableOrigin::Implicit)),
                key.span,
            );
            table.push(key.name.clone(), key.span, open);
        }
        let first = table
            .entry(&key.name)
            .map(|e| e.key_span())
            .unwrap_or(key.span);
        let Some(value) = table.get_mut(&key.name) else {
            return Err(missing(src, key));
        };
        let kind = value.type_name();
        match value.as_table_mut() {
            Some(inner) if inner.origin == TableOrigin::Inline => {
                return Err(redefinition(
                    src,
                    key,
                    format!(
                        "`{name}` was written as an inline table `{{ … }}` at {first}; it cannot be extended here"
                    ),
                    "add the key inside its braces, or turn it into a `[section]`",
                ));
            }
            Some(inner) => table = inner,
            None => {
                return Err(redefinition(
                    src,
                    key,
                    format!(
                        "`{name}` is already defined at {first} as {kind}; it cannot also be a table"
                    ),
                    "rename one of them, or remove the first definition",
                ));
            }
        }
    }
    Ok(table)
}

fn depth_error(src: &Src<'_>, key: &KeySeg) -> Box<Diagnostic> {
    src.err_help(
        ErrorCode::Limit,
        key.span,
        format!("nesting deeper than {MAX_DEPTH} levels"),
        "flatten the structure; configuration never needs this depth",
    )
}

fn missing(src: &Src<'_>, key: &KeySeg) -> Box<Diagnostic> {
    // A key pushed a moment ago is absent: report rather than panic.
    src.err(
        ErrorCode::Syntax,
        key.span,
        format!("internal error: lost key `{}`", key.name),
    )
}

/// Defines the table of a `[a.b]` header.
pub(super) fn define_header(root: &mut Table, keys: &[KeySeg], src: &Src<'_>) -> PResult<()> {
    let Some((last, parents)) = keys.split_last() else {
        return Ok(());
    };
    let table = descend(root, parents, 0, src)?;
    let name = dotted(keys);
    let Some(entry) = table.entry(&last.name) else {
        if keys.len() > MAX_DEPTH {
            return Err(depth_error(src, last));
        }
        let header = Value::new(ValueKind::Table(Table::new(TableOrigin::Header)), last.span);
        table.push(last.name.clone(), last.span, header);
        return Ok(());
    };
    let first = entry.key_span();
    let Some(value) = table.get_mut(&last.name) else {
        return Err(missing(src, last));
    };
    let kind = value.type_name();
    match value.as_table_mut() {
        Some(inner) if inner.origin == TableOrigin::Implicit => {
            inner.origin = TableOrigin::Header;
            Ok(())
        }
        Some(inner) if inner.origin == TableOrigin::Inline => Err(redefinition(
            src,
            last,
            format!(
                "`{name}` was written as an inline table `{{ … }}` at {first}; it cannot also be a section"
            ),
            "move its keys under the `[section]`, or remove the section",
        )),
        Some(_) => Err(redefinition(
            src,
            last,
            format!("section `[{name}]` is already defined at {first}"),
            "merge the two sections into one",
        )),
        None => Err(redefinition(
            src,
            last,
            format!(
                "`{name}` is already defined at {first} as {kind}; it cannot also be a section"
            ),
            "rename one of them, or remove the first definition",
        )),
    }
}

/// Places `value` at `section` + `keys` under the root.
pub(super) fn insert(
    root: &mut Table,
    section: &[KeySeg],
    keys: &[KeySeg],
    value: Value,
    src: &Src<'_>,
) -> PResult<()> {
    let table = descend(root, section, 0, src)?;
    let full: Vec<KeySeg> = section.iter().chain(keys).cloned().collect();
    place(table, section.len(), keys, &full, value, src)
}

/// Places `value` at `keys` inside an inline table at nesting `level`.
pub(super) fn insert_in(
    table: &mut Table,
    level: usize,
    keys: &[KeySeg],
    value: Value,
    src: &Src<'_>,
) -> PResult<()> {
    place(table, level, keys, keys, value, src)
}

fn place(
    table: &mut Table,
    level: usize,
    keys: &[KeySeg],
    full: &[KeySeg],
    value: Value,
    src: &Src<'_>,
) -> PResult<()> {
    let Some((last, parents)) = keys.split_last() else {
        return Ok(());
    };
    let table = descend(table, parents, level, src)?;
    if let Some(entry) = table.entry(&last.name) {
        let name = dotted(full);
        return Err(redefinition(
            src,
            last,
            format!("`{name}` is already defined at {}", entry.key_span()),
            "remove one of the two definitions",
        ));
    }
    table.push(last.name.clone(), last.span, value);
    Ok(())
}
