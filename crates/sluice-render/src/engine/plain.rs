//! Plain YAML/JSON: every manifest file below the path, in a stable order.

use std::path::Path;

use serde_json::Value;
use walkdir::{DirEntry, WalkDir};

use crate::request::{Context, Diagnostic};
use crate::{Error, Result, tree};

fn is_manifest_file(entry: &DirEntry) -> bool {
    entry.file_type().is_file()
        && entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// Hidden entries (`.git`, `.github`) are never manifests.
fn is_hidden(entry: &DirEntry) -> bool {
    entry.depth() > 0 && entry.file_name().to_string_lossy().starts_with('.')
}

fn walk(dir: &Path) -> impl Iterator<Item = walkdir::Result<DirEntry>> {
    WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !is_hidden(e))
}

/// Whether `dir` holds at least one manifest file.
pub(super) fn has_manifests(dir: &Path) -> bool {
    walk(dir)
        .filter_map(|e| e.ok())
        .any(|e| is_manifest_file(&e))
}

pub(super) fn render(ctx: &mut Context<'_>) -> Result<Vec<Value>> {
    ctx.check_symlinks(ctx.dir)?;
    let limits = ctx.request.limits;
    let mut objects = Vec::new();
    let mut total = 0u64;
    for entry in walk(ctx.dir) {
        let entry = entry.map_err(|e| Error::Io {
            path: e
                .path()
                .map(|p| tree::shown(ctx.root, p))
                .unwrap_or_default(),
            source: e.into(),
        })?;
        if !is_manifest_file(&entry) {
            continue;
        }
        let path = entry.path();
        let file = tree::shown(ctx.root, path);
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if size > limits.max_file_bytes {
            tracing::warn!(security = 2, CWE = 400, file = %file.display(), "file over the size limit");
            return Err(Error::FileTooLarge {
                file,
                size,
                limit: limits.max_file_bytes,
            });
        }
        total += size;
        if total > limits.max_manifest_bytes {
            tracing::warn!(
                security = 2,
                CWE = 400,
                "combined manifests over the size limit"
            );
            return Err(Error::TooLarge {
                limit: limits.max_manifest_bytes,
                detail: format!(" (reached at {})", file.display()),
            });
        }
        let bytes = std::fs::read(path).map_err(Error::io(&file))?;
        let text = String::from_utf8(bytes).map_err(|_| Error::NotAManifest {
            file: file.clone(),
            reason: "not UTF-8 text".into(),
        })?;
        let docs = sluice_manifest::parse_documents(&text, &limits.yaml).map_err(|source| {
            if source.is_limit() {
                tracing::warn!(security = 3, CWE = 400, file = %file.display(), "YAML limit tripped: {source}");
            }
            Error::Yaml {
                file: file.clone(),
                source,
            }
        })?;
        let before = objects.len();
        let docs = skip_kustomize_configs(docs, &file, &mut ctx.diagnostics);
        crate::objects::collect(docs, &file, &limits, &mut objects)?;
        tracing::trace!(file = %file.display(), objects = objects.len() - before, "read");
    }
    Ok(objects)
}

/// A nested `kustomization.yaml` is configuration, not an object to apply.
fn skip_kustomize_configs(
    docs: Vec<Value>,
    file: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Value> {
    docs.into_iter()
        .filter(|doc| {
            let is_config = doc["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("kustomize.config.k8s.io/"));
            if is_config {
                diagnostics.push(Diagnostic {
                    file: file.to_path_buf(),
                    message: "kustomize configuration skipped by the plain engine".into(),
                });
            }
            !is_config
        })
        .collect()
}
