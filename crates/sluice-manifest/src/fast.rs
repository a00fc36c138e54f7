//! A fast path for the block-style YAML that Kubernetes manifests are almost always written
//! in. It handles a strict subset (block mappings and sequences, single-line plain and quoted
//! scalars, single-line flow collections, `|`/`|-` literal blocks, comments, `---`) and gives
//! up (`None`) on anything else: anchors, aliases, tags, multi-line scalars, folded blocks,
//! directives, any error. The caller then parses the whole text with the full parser, so
//! every error message and every exotic construct still comes from one place.
//!
//! It exists because general YAML scanners run at ~35 MB/s here, below the renderer's
//! throughput target; this subset parser builds values directly from the bytes. Differential
//! tests hold it to the full parser's output.

use serde_json::{Map, Value};

use crate::scalar::resolve_plain;

/// One source line: indentation (spaces) and the text after it.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
    raw: &'a str,
}

impl Line<'_> {
    /// Blank or comment-only (outside block scalars).
    fn is_blank(&self) -> bool {
        self.text.is_empty() || self.text.starts_with('#')
    }

    fn is_doc_marker(&self) -> bool {
        self.indent == 0 && (self.raw.starts_with("---") || self.raw.starts_with("..."))
    }
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
    max_depth: usize,
}

/// Parses `text` if it stays inside the subset; `None` means "use the full parser".
pub(crate) fn parse(text: &str, max_depth: usize) -> Option<Vec<Value>> {
    if !all_printable(text) {
        return None;
    }
    let mut lines = Vec::with_capacity(text.len() / 24);
    for raw in text.split('\n') {
        let indent = raw.bytes().take_while(|&b| b == b' ').count();
        let text = raw[indent..].trim_end_matches([' ', '\t']);
        lines.push(Line { indent, text, raw });
    }
    let mut p = Parser {
        lines,
        at: 0,
        max_depth,
    };
    p.documents()
}

impl<'a> Parser<'a> {
    /// The next non-blank line, without consuming it. Tabs in indentation end the fast path.
    fn peek(&mut self) -> Option<Option<Line<'a>>> {
        while let Some(line) = self.lines.get(self.at) {
            if line.text.starts_with('\t') {
                return None;
            }
            if !line.is_blank() {
                return Some(Some(*line));
            }
            self.at += 1;
        }
        Some(None)
    }

    fn documents(&mut self) -> Option<Vec<Value>> {
        let mut docs = Vec::new();
        let mut explicit = false;
        loop {
            let Some(line) = self.peek()? else {
                if explicit {
                    docs.push(Value::Null);
                }
                return Some(docs);
            };
            if line.is_doc_marker() {
                let rest = line.raw[3..].trim_start_matches([' ', '\t']);
                if !line.raw.starts_with("---") || !(rest.is_empty() || rest.starts_with('#')) {
                    return None;
                }
                if explicit {
                    docs.push(Value::Null);
                }
                explicit = true;
                self.at += 1;
                continue;
            }
            if line.text.starts_with('%') {
                return None;
            }
            let value = self.block_node(line.indent, 1)?;
            docs.push(value);
            explicit = false;
            if let Some(next) = self.peek()?
                && !next.is_doc_marker()
            {
                return None;
            }
        }
    }

    /// A block node whose first line (the current one) starts at `indent`.
    fn block_node(&mut self, indent: usize, depth: usize) -> Option<Value> {
        // Near the limit the full parser decides, so both agree on what is too deep.
        if depth + 2 > self.max_depth {
            return None;
        }
        let line = self.lines[self.at];
        if is_seq_entry(line.text) {
            self.sequence(indent, depth)
        } else if key_end(line.text).is_some() {
            self.mapping(indent, depth)
        } else {
            // A scalar or flow node on its own line.
            self.at += 1;
            let value = self.inline_value(line.text, indent, depth)?;
            Some(value)
        }
    }

    fn mapping(&mut self, indent: usize, depth: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek()? {
            if line.indent < indent || line.is_doc_marker() {
                break;
            }
            if line.indent > indent || is_seq_entry(line.text) {
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            self.at += 1;
            let value = if rest.is_empty() || rest.starts_with('#') {
                match self.peek()? {
                    Some(next) if next.indent > indent && !next.is_doc_marker() => {
                        self.block_node(next.indent, depth + 1)?
                    }
                    Some(next) if next.indent == indent && is_seq_entry(next.text) => {
                        self.sequence(indent, depth + 1)?
                    }
                    _ => Value::Null,
                }
            } else {
                self.inline_value(rest, indent, depth + 1)?
            };
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize, depth: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self.peek()? {
            if line.indent < indent || line.is_doc_marker() {
                break;
            }
            if line.indent > indent {
                return None;
            }
            if !is_seq_entry(line.text) {
                break;
            }
            let after = &line.text[1..];
            let rest = after.trim_start_matches(' ');
            if rest.starts_with('\t') {
                return None;
            }
            let item_indent = indent + 1 + (after.len() - rest.len());
            let item = if rest.is_empty() || rest.starts_with('#') {
                self.at += 1;
                match self.peek()? {
                    Some(next) if next.indent > indent && !next.is_doc_marker() => {
                        self.block_node(next.indent, depth + 1)?
                    }
                    _ => Value::Null,
                }
            } else if is_seq_entry(rest) {
                return None;
            } else if key_end(rest).is_none() {
                // A scalar, flow or literal item: continuation lines belong to it when they
                // are indented deeper than the dash.
                self.at += 1;
                self.inline_value(rest, indent, depth + 1)?
            } else {
                // `- key: value` opens a mapping whose keys sit at the item's column.
                self.lines[self.at] = Line {
                    indent: item_indent,
                    text: rest,
                    raw: line.raw,
                };
                self.block_node(item_indent, depth + 1)?
            };
            items.push(item);
        }
        Some(Value::Array(items))
    }

    /// A value that starts on the current line after a key or dash: scalar, flow or literal.
    /// `parent` is the indentation of the owning mapping or sequence.
    fn inline_value(&mut self, text: &str, parent: usize, depth: usize) -> Option<Value> {
        let first = text.as_bytes()[0];
        let value = match first {
            b'|' => return self.literal(text, parent),
            b'{' | b'[' => {
                let mut cursor = Cursor { s: text, i: 0 };
                let v = cursor.flow_node(depth, self.max_depth)?;
                cursor.skip_spaces();
                if !cursor.rest_is_comment_or_empty() {
                    return None;
                }
                v
            }
            b'"' | b'\'' => {
                let (s, used) = if first == b'"' {
                    double_quoted(text)?
                } else {
                    single_quoted(text)?
                };
                let rest = text[used..].trim_start_matches([' ', '\t']);
                if !(rest.is_empty() || rest.starts_with('#')) {
                    return None;
                }
                Value::String(s)
            }
            b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b'>' | b'#' | b',' | b']' | b'}' => {
                return None;
            }
            _ => {
                let plain = plain_block_scalar(text)?;
                resolve_plain(plain)
            }
        };
        // A following line indented deeper would continue a multi-line scalar.
        if let Some(next) = self.peek()?
            && next.indent > parent
            && !next.is_doc_marker()
        {
            return None;
        }
        Some(value)
    }

    /// `|` or `|-` literal block scalar; its lines follow the current one, indented deeper
    /// than `parent`.
    fn literal(&mut self, header: &str, parent: usize) -> Option<Value> {
        let keep_newline = match header.split('#').next().map(str::trim) {
            Some("|") => true,
            Some("|-") => false,
            _ => return None,
        };
        let mut block_indent: Option<usize> = None;
        let mut body: Vec<&str> = Vec::new();
        let mut content_lines = 0;
        let mut end = self.at;
        let mut i = self.at;
        while let Some(line) = self.lines.get(i) {
            if line.raw.trim_matches([' ', '\t']).is_empty() {
                // Blank lines longer than the indentation, or with tabs, carry content.
                if line.raw.contains('\t') || line.raw.len() > block_indent.unwrap_or(0) {
                    return None;
                }
                body.push("");
                i += 1;
                continue;
            }
            let b = *block_indent.get_or_insert(line.indent);
            if line.indent <= parent || line.indent < b {
                break;
            }
            body.push(&line.raw[b..]);
            i += 1;
            end = i;
            content_lines = body.len();
        }
        if content_lines == 0 {
            return None;
        }
        body.truncate(content_lines);
        self.at = end;
        let mut text = body.join("\n");
        if keep_newline {
            text.push('\n');
        }
        Some(Value::String(text))
    }
}

/// Whether `text` holds only characters YAML allows anywhere (besides tab and newline), so
/// the fast path never accepts what the full parser would reject.
fn all_printable(text: &str) -> bool {
    let mut non_ascii = false;
    for &b in text.as_bytes() {
        if (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f {
            return false;
        }
        non_ascii |= b >= 0x80;
    }
    !non_ascii
        || !text.chars().any(|c| {
            matches!(
                c,
                '\u{80}'
                    ..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
        })
}

/// `- x` or a lone `-`.
fn is_seq_entry(text: &str) -> bool {
    text == "-" || text.starts_with("- ") || text.starts_with("-\t")
}

/// Where a block mapping key ends (the `:`), if the line is a key/value entry.
fn key_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    match bytes.first()? {
        b'"' | b'\'' => {
            let (_, used) = if bytes[0] == b'"' {
                double_quoted(text)?
            } else {
                single_quoted(text)?
            };
            let rest = &text[used..];
            let after = rest.trim_start_matches(' ');
            (after.starts_with(':') && (after.len() == 1 || after.as_bytes()[1] == b' '))
                .then_some(text.len() - after.len())
        }
        b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`'
        | b'#' | b',' | b'?' => None,
        _ => {
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b':' if i + 1 == bytes.len() || bytes[i + 1] == b' ' => return Some(i),
                    b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
                    _ => {}
                }
                i += 1;
            }
            None
        }
    }
}

/// Splits `key: rest`; the key is the text as written (plain) or unquoted.
fn split_key(text: &str) -> Option<(String, &str)> {
    let colon = key_end(text)?;
    let raw_key = text[..colon].trim_end_matches(' ');
    let key = match raw_key.as_bytes().first()? {
        b'"' => double_quoted(raw_key)?.0,
        b'\'' => single_quoted(raw_key)?.0,
        b'-' | b':' if raw_key.len() == 1 => return None,
        _ => raw_key.to_owned(),
    };
    if key == "<<" {
        return None;
    }
    let rest = text[colon + 1..].trim_start_matches(' ');
    if rest.starts_with('\t') {
        return None;
    }
    Some((key, rest))
}

/// A single-line plain scalar in block context (comment stripped), or `None` if it is
/// something the subset does not take.
fn plain_block_scalar(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    if matches!(bytes[0], b'-' | b'?' | b':') && matches!(bytes.get(1), None | Some(b' ' | b'\t')) {
        return None;
    }
    let end = text.find(" #").unwrap_or(text.len());
    let plain = text[..end].trim_end_matches([' ', '\t']);
    if plain.contains(": ")
        || plain.ends_with(':')
        || plain.contains(" \t#")
        || plain.contains("\t#")
    {
        return None;
    }
    Some(plain)
}

/// A double-quoted scalar at the start of `text`: the string and the bytes consumed.
fn double_quoted(text: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'n' => out.push('\n'),
                    't' | '\t' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    ' ' => out.push(' '),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, h)| h))
                            .collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 4)?;
                        out.push(char::from_u32(code)?);
                    }
                    _ => return None,
                }
            }
            c if c.is_control() && c != '\t' => return None,
            c => out.push(c),
        }
    }
    None
}

/// A single-quoted scalar at the start of `text`: the string and the bytes consumed.
fn single_quoted(text: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let bytes = text.as_bytes();
    let mut i = 1;
    let mut start = 1;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            out.push_str(&text[start..i]);
            if bytes.get(i + 1) == Some(&b'\'') {
                out.push('\'');
                i += 2;
                start = i;
                continue;
            }
            return Some((out, i + 1));
        }
        i += 1;
    }
    None
}

/// A cursor over one line of flow content.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn rest_is_comment_or_empty(&self) -> bool {
        let rest = &self.s[self.i..];
        rest.is_empty() || rest.starts_with('#')
    }

    fn flow_node(&mut self, depth: usize, max_depth: usize) -> Option<Value> {
        if depth + 2 > max_depth {
            return None;
        }
        self.skip_spaces();
        match self.peek()? {
            b'{' => {
                self.i += 1;
                let mut map = Map::new();
                loop {
                    self.skip_spaces();
                    if self.peek()? == b'}' {
                        self.i += 1;
                        return Some(Value::Object(map));
                    }
                    let key = self.flow_key()?;
                    self.skip_spaces();
                    let value = self.flow_node(depth + 1, max_depth)?;
                    if map.insert(key, value).is_some() {
                        return None;
                    }
                    self.skip_spaces();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {}
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    if self.peek()? == b']' {
                        self.i += 1;
                        return Some(Value::Array(items));
                    }
                    items.push(self.flow_node(depth + 1, max_depth)?);
                    self.skip_spaces();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {}
                        _ => return None,
                    }
                }
            }
            b'"' => {
                let (s, used) = double_quoted(&self.s[self.i..])?;
                self.i += used;
                Some(Value::String(s))
            }
            b'\'' => {
                let (s, used) = single_quoted(&self.s[self.i..])?;
                self.i += used;
                Some(Value::String(s))
            }
            _ => {
                let plain = self.flow_plain()?;
                Some(resolve_plain(plain))
            }
        }
    }

    /// `key:` inside a flow mapping (the colon consumed).
    fn flow_key(&mut self) -> Option<String> {
        let key = match self.peek()? {
            b'"' => {
                let (s, used) = double_quoted(&self.s[self.i..])?;
                self.i += used;
                s
            }
            b'\'' => {
                let (s, used) = single_quoted(&self.s[self.i..])?;
                self.i += used;
                s
            }
            _ => self.flow_plain()?.to_owned(),
        };
        self.skip_spaces();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        if !matches!(self.peek(), Some(b' ')) {
            return None;
        }
        Some(key)
    }

    /// A plain scalar in flow context: up to `,` `]` `}`, `: ` or ` #`.
    fn flow_plain(&mut self) -> Option<&str> {
        let bytes = self.s.as_bytes();
        let start = self.i;
        match bytes.get(start)? {
            b'&' | b'*' | b'!' | b'|' | b'>' | b'%' | b'@' | b'`' | b'#' | b'?' | b':' | b'['
            | b'{' | b',' | b']' | b'}' => return None,
            b'-' if matches!(bytes.get(start + 1), None | Some(b' ' | b',' | b']' | b'}')) => {
                return None;
            }
            _ => {}
        }
        let mut i = start;
        while i < bytes.len() {
            match bytes[i] {
                b',' | b']' | b'}' | b'[' | b'{' => break,
                b':' if matches!(bytes.get(i + 1), None | Some(b' ' | b',' | b']' | b'}')) => break,
                b'#' if i > start && bytes[i - 1] == b' ' => return None,
                _ => i += 1,
            }
        }
        self.i = i;
        let plain = self.s[start..i].trim_end_matches(' ');
        (!plain.is_empty()).then_some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{YamlLimits, parse_documents_full};

    /// Whenever the fast path answers, it must answer exactly what the full parser answers.
    fn agree(text: &str) -> bool {
        let fast = parse(text, YamlLimits::default().max_depth);
        let full = parse_documents_full(text, &YamlLimits::default());
        if let Some(fast) = &fast {
            match &full {
                Ok(full) => assert_eq!(fast, full, "fast and full parsers disagree on:\n{text}"),
                Err(e) => panic!("fast path accepted what the full parser rejects ({e}):\n{text}"),
            }
        }
        fast.is_some()
    }

    const MANIFEST: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # trailing comment
  labels: {app: web, tier: \"front end\", 'q': 'it''s'}
  annotations:
    example.com/url: http://example.com:8080/x
    empty:
    quoted-key-next: \"yes\"
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.25
        args: [--port=8080, \"--x=1\", -v]
        ports:
        - containerPort: 80
          protocol: TCP

        env:
          - name: A
            value: on
          - name: B
            value: '0755'
      -   name: sidecar
          command:
          - sh
          - -c
          - |
            echo hi
            exit 0
---
apiVersion: v1
kind: ConfigMap
data:
  script: |
    #!/bin/sh
      indented

    done
  stripped: |-
    no newline
  url: https://x.example/a#frag
  n: -12
  f: 1.5e3
  t: ~
";

    #[test]
    fn kubernetes_manifests_take_the_fast_path_and_agree() {
        assert!(
            agree(MANIFEST),
            "the fast path must take ordinary manifests"
        );
        agree("---\napiVersion: v1\nkind: List\nitems: []\n...\n");
        assert!(agree("a: 1\n---\n---\nb: 2\n"));
        assert!(agree("---\n# only a comment\n"));
        assert!(agree(""));
        assert!(agree("- a\n- b: 1\n  c: [1, {d: e}]\n-\n  - x\n"));
    }

    #[test]
    fn unusual_yaml_falls_back_or_agrees() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: >\n  folded\n",
            "a: |+\n  keep\n\n",
            "a: |2\n   x\n",
            "a: multi\n  line\n",
            "a: \"multi\n  line\"\n",
            "a: b: c\n",
            "a: 1\na: 2\n",
            "? complex\n: value\n",
            "%YAML 1.2\n---\na: 1\n",
            "a:\n\t- b\n",
            "<<: {a: 1}\n",
            "a: [1, 2\n",
            "a: {b: c\n",
            "- - a\n",
            "a: - b\n",
            "\"a\":1\n",
            "{a: 1}\n",
            "[1, 2]\n",
            "plain scalar document\n",
            "a: 'unterminated\n",
            "a: \"\\x41\"\n",
            "a: \"\\u00e9\"\n",
            "a: x # c\nb: y #c\n",
            "a: x#notcomment\n",
            "a:    \n  b: 1\n",
            "a:\n- 1\n- 2\nb: 3\n",
            "a:\n  - 1\n  - 2\nb: 3\n",
            "  a: 1\n  b: 2\n",
            "a: |\n  x\n b: 1\n",
            "a: |\n\n  x\n",
            "a: |\n  x\n\n\nb: 1\n",
            "a: |\n  x\n   \n  y\n",
            "a: --- \n",
            "--- a\n",
            "a: 1\n...\n",
            "k: {a: b, c: [1, 2, {d: '3'}], e: \"f\"}\n",
            "k: {a: b,}\n",
            "k: [a, b,]\n",
            "k: {a}\n",
            "k: [a: b]\n",
            "k: {a:b}\n",
            "k: [http://x, 'a:b']\n",
            "k: -\n",
            "k: :x\n",
            "k: ?x\n",
            "k: -1\n",
            "k: - \n",
            "- \n- a\n",
            "a:\n  - b\n  c: d\n",
            "a: x\u{1}y\n",
            "a: x\u{85}y\n",
            "a: x\u{2028}y\n",
            "a: x\u{7f}y\n",
            "a: x\u{feff}y\n",
            "a: 'x\u{1}y'\n",
            "a: \"x\u{1}y\"\n",
            "a\u{1}: y\n",
            "a: [x\u{1}]\n",
            "a: |\n  x\u{1}\n",
            "a: \"\\u0001\"\n",
        ] {
            agree(text);
        }
    }

    /// A small deterministic generator of YAML-looking text, plain-written tricky scalars
    /// included: the fast path must never disagree with the full parser.
    #[test]
    fn random_documents_agree() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        const SCALARS: [&str; 44] = [
            "c\u{1}",
            "b\u{feff}",
            "n\u{85}",
            "x: y #z",
            "x",
            "yes",
            "no",
            "on",
            "y",
            "0755",
            "0x1F",
            "1_000",
            "1e3",
            ".5",
            "-1",
            "+1",
            "null",
            "~",
            "",
            "a: b",
            "a:b",
            "#c",
            "x #c",
            "x#c",
            "'q'",
            "\"d\"",
            "- a",
            "-a",
            "--p=1",
            "http://h:1/p",
            "{x}",
            "[y]",
            "a, b",
            "tab\there",
            "é✓",
            "key:",
            " lead",
            "2001-12-14",
            "1.0",
            "true",
            "@x",
            "`x`",
            "%x",
            "!x",
        ];
        fn quote(s: &str, how: usize) -> String {
            match how {
                0 => s.to_owned(),
                1 => format!("'{}'", s.replace('\'', "''")),
                _ => serde_json::to_string(s).unwrap_or_default(),
            }
        }
        let mut fast_taken = 0;
        let rounds: usize = std::env::var("SLUICE_DIFF_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        for _ in 0..rounds {
            let mut text = String::new();
            for _ in 0..1 + next(3) {
                if next(2) == 0 {
                    text.push_str("---\n");
                }
                let mut indent_stack = vec![0usize];
                for _ in 0..1 + next(12) {
                    let indent = indent_stack[next(indent_stack.len())];
                    let pad = " ".repeat(indent);
                    let key = quote(SCALARS[next(SCALARS.len())], next(3));
                    let value = quote(SCALARS[next(SCALARS.len())], next(3));
                    match next(8) {
                        0 => {
                            text.push_str(&format!("{pad}{key}:\n"));
                            indent_stack.push(indent + 2);
                        }
                        1 => text.push_str(&format!(
                            "{pad}{key}:\n{pad}- {value}\n{pad}- {key}: {value}\n"
                        )),
                        2 => text.push_str(&format!(
                            "{pad}{key}: {{k: {value}, j: [{value}, {key}]}}\n"
                        )),
                        3 => text.push_str(&format!(
                            "{pad}{key}: |\n{pad}  {value}\n{pad}  # not a comment\n"
                        )),
                        4 => text.push_str(&format!("{pad}# comment {value}\n\n")),
                        5 => text
                            .push_str(&format!("{pad}- {key}: {value}\n{pad}  other: {value}\n")),
                        _ => text.push_str(&format!("{pad}{key}: {value}\n")),
                    }
                }
            }
            if agree(&text) {
                fast_taken += 1;
            }
        }
        assert!(
            fast_taken > rounds / 20,
            "the fast path took only {fast_taken} of {rounds}"
        );
    }

    #[test]
    fn emitter_output_takes_the_fast_path() {
        let doc = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "data": {"a": "yes", "b": "0755", "s": "line one\nline two\n", "e": "", "l": [1, "x", null, true]}});
        let text = crate::to_yaml_document(&doc);
        assert_eq!(parse(&text, 100), Some(vec![doc]));
    }
}
