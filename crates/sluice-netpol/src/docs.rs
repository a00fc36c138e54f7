//! Reading YAML/JSON documents from files, directories and stdin.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_manifest::YamlLimits;

use crate::error::{Error, Result};
use crate::policy::{Policy, Problem, compile};

/// One object read from an input.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it came from (`-` for stdin).
    pub origin: String,
    /// Its position in that file, 1-based (items of a `List` count after it).
    pub index: usize,
    /// The object.
    pub value: Value,
}

/// Reads every document of the given files and directories (`-` is stdin). Directories are
/// walked recursively in name order for `.yaml`, `.yml` and `.json` files. `List` objects and
/// top-level JSON arrays are flattened.
pub fn read_documents(paths: &[PathBuf]) -> Result<Vec<Document>> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            files.push(path.clone());
        } else if path.is_dir() {
            collect_dir(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    let mut out = Vec::new();
    for file in files {
        let (origin, text) = if file.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::Io {
                    path: file.clone(),
                    source,
                })?;
            ("-".to_owned(), text)
        } else {
            let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })?;
            (file.display().to_string(), text)
        };
        parse_text(&text, &origin, &mut out)?;
    }
    Ok(out)
}

/// Parses one YAML or JSON text into documents.
pub fn parse_text(text: &str, origin: &str, out: &mut Vec<Document>) -> Result<()> {
    let values = sluice_manifest::parse_documents(text, &YamlLimits::default()).map_err(|e| {
        Error::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        }
    })?;
    let mut index = 0;
    for value in values {
        flatten(value, origin, &mut index, out)?;
    }
    Ok(())
}

fn flatten(value: Value, origin: &str, index: &mut usize, out: &mut Vec<Document>) -> Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                flatten(item, origin, index, out)?;
            }
            Ok(())
        }
        Value::Object(mut map) => {
            *index += 1;
            let is_list = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"));
            if is_list {
                if let Some(Value::Array(items)) = map.remove("items") {
                    for item in items {
                        flatten(item, origin, index, out)?;
                    }
                }
                return Ok(());
            }
            out.push(Document {
                origin: origin.to_owned(),
                index: *index,
                value: Value::Object(map),
            });
            Ok(())
        }
        other => {
            *index += 1;
            Err(Error::Kind {
                origin: origin.to_owned(),
                index: *index,
                message: format!("expected an object, found {other}"),
            })
        }
    }
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// `kind` and `apiVersion` of a document.
pub fn kind_of(value: &Value) -> (&str, &str) {
    (
        value.get("kind").and_then(Value::as_str).unwrap_or(""),
        value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// A set of NetworkPolicies with an index by namespace.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// The policies, in input order.
    pub policies: Vec<Policy>,
    /// Problems found while reading (only when read non-strictly), by policy index.
    pub problems: Vec<(usize, Problem)>,
    by_namespace: HashMap<String, Vec<usize>>,
}

impl PolicySet {
    /// Builds a set from compiled policies.
    pub fn new(policies: Vec<Policy>) -> Self {
        let mut set = Self::default();
        for p in policies {
            set.push(p);
        }
        set
    }

    fn push(&mut self, policy: Policy) {
        self.by_namespace
            .entry(policy.namespace.clone())
            .or_default()
            .push(self.policies.len());
        self.policies.push(policy);
    }

    /// Reads NetworkPolicies from files and directories. Every document must be a
    /// `networking.k8s.io/v1` NetworkPolicy (or a List of them).
    pub fn load(paths: &[PathBuf], strict: bool) -> Result<Self> {
        let docs = read_documents(paths)?;
        Self::from_documents(&docs, strict)
    }

    /// Compiles documents into a set.
    pub fn from_documents(docs: &[Document], strict: bool) -> Result<Self> {
        let mut set = Self::default();
        let mut seen: HashMap<String, String> = HashMap::new();
        for doc in docs {
            let (kind, api_version) = kind_of(&doc.value);
            if kind != "NetworkPolicy" {
                return Err(Error::Kind {
                    origin: doc.origin.clone(),
                    index: doc.index,
                    message: format!(
                        "kind {:?} is not a NetworkPolicy (only networking.k8s.io/v1 NetworkPolicy and List are read here)",
                        kind
                    ),
                });
            }
            if api_version != "networking.k8s.io/v1" {
                return Err(Error::Kind {
                    origin: doc.origin.clone(),
                    index: doc.index,
                    message: format!(
                        "apiVersion {api_version:?} of NetworkPolicy is not supported (expected networking.k8s.io/v1)"
                    ),
                });
            }
            let (policy, problems) = compile(doc, strict)?;
            let key = policy.key();
            let at = format!("{} (document {})", doc.origin, doc.index);
            if let Some(first) = seen.insert(key.clone(), at.clone()) {
                return Err(Error::Duplicate {
                    object: format!("NetworkPolicy {key}"),
                    first,
                    second: at,
                });
            }
            let index = set.policies.len();
            set.problems
                .extend(problems.into_iter().map(|p| (index, p)));
            set.push(policy);
        }
        Ok(set)
    }

    /// Indexes of the policies in a namespace.
    pub fn in_namespace(&self, namespace: &str) -> &[usize] {
        self.by_namespace
            .get(namespace)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}
