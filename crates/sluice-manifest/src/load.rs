//! Streaming YAML → JSON values, with alias and depth budgets enforced while parsing.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Value};

use crate::scalar::resolve_plain;
use crate::{Error, Result};

/// Budgets that bound what one YAML text may cost to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Maximum nodes created by alias expansion across one text.
    pub max_alias_nodes: u64,
    /// Maximum nesting depth of mappings and sequences.
    pub max_depth: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        Self {
            max_alias_nodes: 10_000,
            max_depth: 100,
        }
    }
}

/// A value under construction, with the cost figures an alias to it would incur.
struct Built {
    value: Value,
    nodes: u64,
    depth: usize,
}

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        nodes: u64,
        depth: usize,
    },
    Map {
        map: Map<String, Value>,
        key: Option<(String, bool)>,
        merged: HashSet<String>,
        anchor: usize,
        nodes: u64,
        depth: usize,
    },
}

/// Parses every document of a YAML (or JSON) text. Empty documents become `Value::Null`.
pub fn parse_documents(text: &str, limits: &YamlLimits) -> Result<Vec<Value>> {
    if let Some(docs) = crate::fast::parse(text, limits.max_depth) {
        return Ok(docs);
    }
    parse_documents_full(text, limits)
}

/// The full YAML parser, without the fast path (used directly by the differential tests).
pub(crate) fn parse_documents_full(text: &str, limits: &YamlLimits) -> Result<Vec<Value>> {
    Loader {
        limits: *limits,
        anchors: HashMap::new(),
        stack: Vec::new(),
        docs: Vec::new(),
        alias_nodes: 0,
    }
    .run(text)
}

struct Loader {
    limits: YamlLimits,
    anchors: HashMap<usize, (Value, u64, usize)>,
    stack: Vec<Frame>,
    docs: Vec<Value>,
    alias_nodes: u64,
}

impl Loader {
    fn run(mut self, text: &str) -> Result<Vec<Value>> {
        let mut parser = Parser::new_from_str(text);
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                // The scanner has its own nesting guard for flow collections; report it as ours.
                if e.info().contains("recursion limit") {
                    Error::DepthLimit {
                        limit: self.limits.max_depth,
                        line: e.marker().line(),
                    }
                } else {
                    Error::Syntax {
                        line: e.marker().line(),
                        column: e.marker().col() + 1,
                        message: e.info().to_owned(),
                    }
                }
            })?;
            let line = span.start.line();
            match event {
                Event::DocumentStart(_) => self.anchors.clear(),
                Event::Scalar(text, style, anchor, tag) => {
                    // Keys stay the text written: a field named `y` or `on` is not a boolean.
                    let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                    let value = if is_key {
                        Value::String(text.to_string())
                    } else {
                        scalar_value(&text, style, tag.as_deref())
                    };
                    self.finish(
                        Built {
                            value,
                            nodes: 1,
                            depth: 0,
                        },
                        anchor,
                        style == ScalarStyle::Plain && text == "<<",
                        &span,
                    )?;
                }
                Event::Alias(id) => {
                    let (value, nodes, depth) = self
                        .anchors
                        .get(&id)
                        .cloned()
                        .ok_or(Error::UnknownAnchor { line })?;
                    self.alias_nodes += nodes;
                    if self.alias_nodes > self.limits.max_alias_nodes {
                        return Err(Error::AliasLimit {
                            limit: self.limits.max_alias_nodes,
                            line,
                        });
                    }
                    if self.stack.len() + depth > self.limits.max_depth {
                        return Err(Error::DepthLimit {
                            limit: self.limits.max_depth,
                            line,
                        });
                    }
                    self.finish(
                        Built {
                            value,
                            nodes,
                            depth,
                        },
                        0,
                        false,
                        &span,
                    )?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.push(
                        Frame::Seq {
                            items: Vec::new(),
                            anchor,
                            nodes: 1,
                            depth: 1,
                        },
                        line,
                    )?;
                }
                Event::MappingStart(anchor, _) => {
                    self.push(
                        Frame::Map {
                            map: Map::new(),
                            key: None,
                            merged: HashSet::new(),
                            anchor,
                            nodes: 1,
                            depth: 1,
                        },
                        line,
                    )?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let built = match self.stack.pop() {
                        Some(Frame::Seq {
                            items,
                            anchor,
                            nodes,
                            depth,
                        }) => (Value::Array(items), anchor, nodes, depth),
                        Some(Frame::Map {
                            map,
                            anchor,
                            nodes,
                            depth,
                            ..
                        }) => (Value::Object(map), anchor, nodes, depth),
                        None => continue,
                    };
                    let (value, anchor, nodes, depth) = built;
                    self.finish(
                        Built {
                            value,
                            nodes,
                            depth,
                        },
                        anchor,
                        false,
                        &span,
                    )?;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(self.docs)
    }

    fn push(&mut self, frame: Frame, line: usize) -> Result<()> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(Error::DepthLimit {
                limit: self.limits.max_depth,
                line,
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Attaches a completed node to its parent (or ends the document).
    fn finish(&mut self, built: Built, anchor: usize, merge_key: bool, span: &Span) -> Result<()> {
        let line = span.start.line();
        if anchor != 0 {
            self.anchors
                .insert(anchor, (built.value.clone(), built.nodes, built.depth));
        }
        let Some(parent) = self.stack.last_mut() else {
            self.docs.push(built.value);
            return Ok(());
        };
        match parent {
            Frame::Seq {
                items,
                nodes,
                depth,
                ..
            } => {
                *nodes += built.nodes;
                *depth = (*depth).max(built.depth + 1);
                items.push(built.value);
            }
            Frame::Map {
                map,
                key,
                merged,
                nodes,
                depth,
                ..
            } => {
                *nodes += built.nodes;
                *depth = (*depth).max(built.depth + 1);
                match key.take() {
                    None => {
                        let name = match built.value {
                            Value::String(s) => s,
                            Value::Null => "null".to_owned(),
                            Value::Bool(b) => b.to_string(),
                            Value::Number(n) => n.to_string(),
                            Value::Array(_) | Value::Object(_) => {
                                return Err(Error::ComplexKey { line });
                            }
                        };
                        *key = Some((name, merge_key));
                    }
                    Some((_, true)) => merge_into(map, merged, built.value, line)?,
                    Some((name, false)) => {
                        if map.contains_key(&name) && !merged.remove(&name) {
                            return Err(Error::DuplicateKey { key: name, line });
                        }
                        map.insert(name, built.value);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Applies a `<<` merge: keys already set explicitly win; merged keys may be overridden later.
fn merge_into(
    map: &mut Map<String, Value>,
    merged: &mut HashSet<String>,
    source: Value,
    line: usize,
) -> Result<()> {
    let sources = match source {
        Value::Object(m) => vec![m],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(m) => Ok(m),
                _ => Err(Error::Syntax {
                    line,
                    column: 1,
                    message: "a merge key (<<) takes a mapping or a list of mappings".into(),
                }),
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(Error::Syntax {
                line,
                column: 1,
                message: "a merge key (<<) takes a mapping or a list of mappings".into(),
            });
        }
    };
    for source in sources {
        for (k, v) in source {
            if !map.contains_key(&k) {
                merged.insert(k.clone());
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

fn scalar_value(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    let suffix = tag.map(|t| t.suffix.as_str());
    if suffix == Some("str") || style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    resolve_plain(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Result<Vec<Value>> {
        parse_documents(text, &YamlLimits::default())
    }

    #[test]
    fn multi_document_stream_keeps_key_order() {
        let docs = load("b: 1\na: [x, 'yes', yes]\n---\n---\nkind: X\n").expect("parse");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0], json!({"b": 1, "a": ["x", "yes", true]}));
        assert_eq!(
            docs[0].as_object().map(|m| m.keys().next().cloned()),
            Some(Some("b".into()))
        );
        assert_eq!(docs[1], Value::Null);
        assert_eq!(docs[2], json!({"kind": "X"}));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let docs =
            load("base: &b {x: 1, y: 2}\nuse: *b\nmerged:\n  <<: *b\n  y: 3\n").expect("parse");
        assert_eq!(docs[0]["use"], json!({"x": 1, "y": 2}));
        assert_eq!(docs[0]["merged"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn alias_bomb_is_stopped() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] {
            text.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = name;
        }
        let err = load(&text).expect_err("bomb");
        assert!(
            matches!(err, Error::AliasLimit { limit: 10_000, .. }),
            "{err}"
        );
    }

    #[test]
    fn deep_nesting_is_stopped() {
        let flow = format!("{}{}", "[".repeat(500), "]".repeat(500));
        let err = load(&flow).expect_err("deep");
        assert!(matches!(err, Error::DepthLimit { limit: 100, .. }), "{err}");
        let block: String = (0..150)
            .map(|i| format!("{}k:\n", " ".repeat(i * 2)))
            .collect();
        let err = load(&block).expect_err("deep");
        assert!(matches!(err, Error::DepthLimit { limit: 100, .. }), "{err}");
        let shallow = format!("{}{}", "[".repeat(50), "]".repeat(50));
        assert!(load(&shallow).is_ok());
    }

    #[test]
    fn duplicate_keys_are_rejected_with_the_line() {
        let err = load("a: 1\nb: 2\na: 3\n").expect_err("dup");
        assert_eq!(
            err,
            Error::DuplicateKey {
                key: "a".into(),
                line: 3
            }
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = load("a: [1, 2\nb: c\n").expect_err("syntax");
        assert!(matches!(err, Error::Syntax { .. }), "{err}");
    }

    #[test]
    fn numeric_keys_become_strings_and_tags_force_strings() {
        let docs = load("80: http\ny: !!str 123\n").expect("parse");
        assert_eq!(docs[0], json!({"80": "http", "y": "123"}));
    }
}
