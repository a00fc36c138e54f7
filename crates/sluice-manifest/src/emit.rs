//! A deterministic block-style YAML emitter for JSON values, in the layout `kubectl` and
//! kustomize print (sequences not indented under their key, literal blocks for multi-line text).

use std::fmt::Write;

use serde_json::Value;

use crate::scalar::resolves_to_non_string;

/// Appends `docs` to `out` as a YAML stream, each document introduced by `---`.
pub fn write_yaml_stream<'a>(docs: impl IntoIterator<Item = &'a Value>, out: &mut String) {
    for doc in docs {
        out.push_str("---\n");
        write_node(doc, 0, out);
    }
}

/// One document as YAML text (no `---` marker).
pub fn to_yaml_document(value: &Value) -> String {
    let mut out = String::new();
    write_node(value, 0, &mut out);
    out
}

/// Writes a node that starts at the beginning of a line at `indent`.
fn write_node(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                pad(indent, out);
                write_key(key, out);
                write_child(child, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                pad(indent, out);
                out.push('-');
                write_item(item, indent, out);
            }
        }
        scalar => {
            pad(indent, out);
            write_scalar(scalar, indent, out);
            out.push('\n');
        }
    }
}

/// The value after `key:`.
fn write_child(child: &Value, indent: usize, out: &mut String) {
    match child {
        Value::Object(map) if !map.is_empty() => {
            out.push_str(":\n");
            write_node(child, indent + 2, out);
        }
        // kubectl's layout: a list under a key starts at the key's own column.
        Value::Array(items) if !items.is_empty() => {
            out.push_str(":\n");
            write_node(child, indent, out);
        }
        scalar => {
            out.push_str(": ");
            write_scalar(scalar, indent + 2, out);
            out.push('\n');
        }
    }
}

/// The value after a `-` list marker.
fn write_item(item: &Value, indent: usize, out: &mut String) {
    match item {
        Value::Object(map) if !map.is_empty() => {
            let mut first = true;
            for (key, child) in map {
                if first {
                    out.push(' ');
                    first = false;
                } else {
                    pad(indent + 2, out);
                }
                write_key(key, out);
                write_child(child, indent + 2, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_node(item, indent + 2, out);
        }
        scalar => {
            out.push(' ');
            write_scalar(scalar, indent + 2, out);
            out.push('\n');
        }
    }
}

fn write_key(key: &str, out: &mut String) {
    if is_plain_safe(key) {
        out.push_str(key);
    } else {
        write_quoted(key, out);
    }
}

/// A scalar (or empty collection) in place; `indent` is where block text lines go.
fn write_scalar(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, indent, out),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn write_string(s: &str, indent: usize, out: &mut String) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if is_literal_safe(s) {
        let body = s.trim_end_matches('\n');
        let trailing = s.len() - body.len();
        out.push_str(match trailing {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        for line in s[..s.len() - trailing.min(1)].split('\n') {
            out.push('\n');
            if !line.is_empty() {
                pad(indent, out);
                out.push_str(line);
            }
        }
    } else {
        write_quoted(s, out);
    }
}

fn write_quoted(s: &str, out: &mut String) {
    // A JSON string literal is a valid YAML double-quoted scalar.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

fn pad(indent: usize, out: &mut String) {
    const SPACES: &str = "                                                                ";
    let mut left = indent;
    while left > 0 {
        let n = left.min(SPACES.len());
        out.push_str(&SPACES[..n]);
        left -= n;
    }
}

/// Whether `s` can be written unquoted and read back as the same string by YAML 1.1 and 1.2
/// parsers alike.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if first.is_whitespace()
        || s.ends_with(char::is_whitespace)
        || "-?:,[]{}#&*!|>'\"%@`=<".contains(first)
        || s.ends_with(':')
    {
        return false;
    }
    // One pass over the bytes (this runs for every scalar written): `: ` and ` #` would be
    // read as structure, control characters cannot appear unquoted.
    let mut prev = 0u8;
    let mut non_ascii = false;
    for &b in s.as_bytes() {
        if b < 0x20 || b == 0x7f || (b == b' ' && prev == b':') || (b == b'#' && prev == b' ') {
            return false;
        }
        non_ascii |= b >= 0x80;
        prev = b;
    }
    if non_ascii
        && s.chars()
            .any(|c| c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}')
    {
        return false;
    }
    // Anything a resolver could read as a number, date or special float stays quoted.
    if (first.is_ascii_digit() || first == '.' || first == '+')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoObB._:+-TtZz ".contains(c))
    {
        return false;
    }
    !resolves_to_non_string(s)
}

/// Whether `s` reads back unchanged from a `|` literal block at any indentation.
fn is_literal_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.trim().is_empty()
        && !s.starts_with([' ', '\t', '\n'])
        && !s
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
        && !s.split('\n').any(|line| line.ends_with([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{YamlLimits, parse_documents};
    use serde_json::json;

    fn round_trip(value: &Value) {
        let text = to_yaml_document(value);
        let back = parse_documents(&text, &YamlLimits::default()).expect("reparse");
        assert_eq!(&back[0], value, "emitted:\n{text}");
    }

    #[test]
    fn kubectl_layout() {
        let doc = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80}]}], "empty": {}}
        });
        assert_eq!(
            to_yaml_document(&doc),
            "apiVersion: apps/v1\nkind: Deployment\nspec:\n  containers:\n  - name: web\n    ports:\n    - containerPort: 80\n  empty: {}\n"
        );
    }

    #[test]
    fn strings_that_look_like_other_types_are_quoted() {
        let doc = json!({"a": "yes", "b": "0755", "c": "1.0", "d": "", "e": "null", "f": "y",
                         "g": "- x", "h": "a: b", "i": "2001-12-14", "j": " pad", "k": "*ref",
                         "l": "1e3", "m": "0x1F", "n": "~", "o": "tab\there"});
        let text = to_yaml_document(&doc);
        assert!(text.contains("a: \"yes\""), "{text}");
        assert!(text.contains("b: \"0755\""), "{text}");
        round_trip(&doc);
    }

    #[test]
    fn multi_line_strings_use_literal_blocks() {
        let doc = json!({"data": {"script": "#!/bin/sh\necho hi\n\nexit 0\n", "noeol": "a\nb",
                                   "many": "a\n\n\n", "lead": " a\nb"}});
        let text = to_yaml_document(&doc);
        assert!(
            text.contains("script: |\n    #!/bin/sh\n    echo hi\n\n    exit 0\n"),
            "{text}"
        );
        assert!(text.contains("noeol: |-\n    a\n    b\n"), "{text}");
        round_trip(&doc);
    }

    #[test]
    fn nested_lists_and_odd_keys_round_trip() {
        round_trip(
            &json!({"x": [[1, 2], [], [{"a": null}]], "weird key: yes": {"80": true},
                            "": "empty key", "unicode": "héllo ✓", "list": [{"k": [1]}]}),
        );
    }
}
