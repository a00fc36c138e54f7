//! Turning parsed documents into Kubernetes objects, and summarizing a render.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, RenderLimits, Result};

/// Appends the objects in `docs` (read from `file`) to `out`: skips empty documents,
/// flattens `List` kinds, and rejects anything without `apiVersion` and `kind`.
pub(crate) fn collect(
    docs: Vec<Value>,
    file: &Path,
    limits: &RenderLimits,
    out: &mut Vec<Value>,
) -> Result<()> {
    for (index, doc) in docs.into_iter().enumerate() {
        push_object(doc, file, index, limits, out)?;
    }
    Ok(())
}

fn push_object(
    doc: Value,
    file: &Path,
    index: usize,
    limits: &RenderLimits,
    out: &mut Vec<Value>,
) -> Result<()> {
    let not_manifest = |reason: String| Error::NotAManifest {
        file: file.to_path_buf(),
        reason,
    };
    let Value::Object(mut map) = doc else {
        return if doc.is_null() {
            Ok(())
        } else {
            Err(not_manifest(format!(
                "document {} is not a mapping; expected a Kubernetes object",
                index + 1
            )))
        };
    };
    let has = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !has("apiVersion") || !has("kind") {
        return Err(not_manifest(format!(
            "document {} has no apiVersion and kind; not a Kubernetes manifest",
            index + 1
        )));
    }
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind.ends_with("List")
        && let Some(Value::Array(items)) = map.remove("items")
    {
        for item in items {
            push_object(item, file, index, limits, out)?;
        }
        return Ok(());
    }
    if out.len() >= limits.max_objects {
        tracing::warn!(security = 2, CWE = 400, "object limit reached");
        return Err(Error::TooManyObjects {
            limit: limits.max_objects,
        });
    }
    out.push(Value::Object(map));
    Ok(())
}

/// Counts by kind, total bytes and digest of a rendered output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Number of objects.
    pub objects: usize,
    /// Objects per kind (`group/version Kind` is collapsed to `Kind`), sorted.
    pub kinds: BTreeMap<String, usize>,
    /// Bytes of the rendered output.
    pub bytes: usize,
    /// `sha256:<hex>` of the rendered output.
    pub sha256: String,
}

/// Summarizes `objects` as they were rendered to `output`.
pub fn summarize(objects: &[Value], output: &str) -> Summary {
    let mut kinds = BTreeMap::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or("<none>").to_owned();
        *kinds.entry(kind).or_insert(0) += 1;
    }
    Summary {
        objects: objects.len(),
        kinds,
        bytes: output.len(),
        sha256: format!("sha256:{}", hex::encode(Sha256::digest(output.as_bytes()))),
    }
}
