//! Kustomize through the real tool, after a pre-flight check of every kustomization it would
//! read: no remote bases, no paths out of the tree, no Helm inflation or plugins.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::request::{Context, ToolInfo};
use crate::{Error, Result, tools, tree};

const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The kustomization file in `dir`, if any.
pub(super) fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

pub(super) fn render(ctx: &mut Context<'_>) -> Result<(Vec<Value>, ToolInfo)> {
    ctx.check_symlinks(ctx.root)?;
    let mut visited = BTreeSet::new();
    preflight(ctx, ctx.dir, &mut visited)?;

    let tool = tools::find(
        ctx.request.tools.kustomize.as_deref(),
        &["kustomize", "kubectl"],
    )
    .map_err(|tried| Error::ToolMissing {
        engine: "kustomize",
        tool: "kustomize or kubectl",
        tried,
        flag: "--kustomize-tool",
    })?;
    let is_kubectl = tool
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("kubectl"));
    let (mut args, version_args): (Vec<String>, &[&str]) = if is_kubectl {
        (vec!["kustomize".into()], &["version", "--client"])
    } else {
        (vec!["build".into()], &["version"])
    };
    args.push(ctx.dir.display().to_string());
    let cache_dir = &ctx.request.fetch.cache_dir;
    let version = tools::version(&tool, version_args, cache_dir, &ctx.sandbox);
    let name = if is_kubectl {
        "kubectl kustomize"
    } else {
        "kustomize"
    };
    let objects = super::run_tool(ctx, name, &tool, args, |_| Vec::new())?;
    Ok((
        objects,
        ToolInfo {
            path: tool,
            version,
        },
    ))
}

/// Checks the kustomization in `dir` and, recursively, every local base or component.
fn preflight(ctx: &Context<'_>, dir: &Path, visited: &mut BTreeSet<PathBuf>) -> Result<()> {
    if !visited.insert(dir.to_path_buf()) {
        return Ok(());
    }
    let Some(file) = kustomization_file(dir) else {
        return Ok(());
    };
    let shown = tree::shown(ctx.root, &file);
    let limits = &ctx.request.limits;
    let size = std::fs::metadata(&file).map_err(Error::io(&shown))?.len();
    if size > limits.max_file_bytes {
        return Err(Error::FileTooLarge {
            file: shown,
            size,
            limit: limits.max_file_bytes,
        });
    }
    let text = std::fs::read_to_string(&file).map_err(Error::io(&shown))?;
    let docs =
        sluice_manifest::parse_documents(&text, &limits.yaml).map_err(|source| Error::Yaml {
            file: shown.clone(),
            source,
        })?;
    let Some(Value::Object(k)) = docs.into_iter().find(|d| !d.is_null()) else {
        return Ok(());
    };
    for feature in ["helmCharts", "helmChartInflationGenerator", "helmGlobals"] {
        if k.contains_key(feature) {
            tracing::warn!(security = 3, CWE = 829, file = %shown.display(), feature, "kustomize Helm inflation refused");
            return Err(Error::Forbidden {
                file: shown,
                feature: feature.into(),
                why: "Helm inflation inside kustomize fetches and runs charts; render the chart with the helm engine instead",
            });
        }
    }
    let strings = |key: &str| -> Vec<String> {
        k.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let nested_paths = |key: &str, field: &str| -> Vec<String> {
        k.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.get(field).and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    // Entries that may be directories (other kustomizations) or files.
    let mut resources = strings("resources");
    resources.extend(strings("bases"));
    resources.extend(strings("components"));
    for reference in resources {
        let resolved = check_reference(ctx, dir, &file, &reference, "resource")?;
        if resolved.is_dir() {
            preflight(ctx, &resolved, visited)?;
        }
    }
    // Entries that are always files.
    let mut files = strings("crds");
    files.extend(
        strings("patchesStrategicMerge")
            .into_iter()
            .filter(|p| !p.contains('\n')),
    );
    files.extend(strings("configurations"));
    files.extend(strings("generators"));
    files.extend(strings("transformers"));
    files.extend(strings("validators"));
    files.extend(nested_paths("patches", "path"));
    files.extend(nested_paths("patchesJson6902", "path"));
    files.extend(nested_paths("replacements", "path"));
    if let Some(path) = k
        .get("openapi")
        .and_then(|o| o.get("path"))
        .and_then(Value::as_str)
    {
        files.push(path.to_owned());
    }
    for generator in ["configMapGenerator", "secretGenerator"] {
        for entry in k
            .get(generator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for field in ["files", "envs"] {
                for source in entry
                    .get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = source.as_str() {
                        // `key=path` names the key; the path is after the first `=`.
                        files.push(s.split_once('=').map_or(s, |(_, p)| p).to_owned());
                    }
                }
            }
            if let Some(env) = entry.get("env").and_then(Value::as_str) {
                files.push(env.to_owned());
            }
        }
    }
    for reference in files {
        check_reference(ctx, dir, &file, &reference, "file")?;
    }
    Ok(())
}

fn check_reference(
    ctx: &Context<'_>,
    dir: &Path,
    file: &Path,
    reference: &str,
    kind: &str,
) -> Result<PathBuf> {
    if let Some(why) = remote_kind(reference) {
        let shown = tree::shown(ctx.root, file);
        tracing::warn!(
            security = 3,
            CWE = 829,
            file = %shown.display(),
            reference,
            "remote kustomize reference refused"
        );
        return Err(Error::RemoteReference {
            file: shown,
            reference: reference.to_owned(),
            why,
        });
    }
    tree::resolve_within(ctx.root, dir, reference, file, kind)
}

/// Whether a kustomize reference would be fetched over the network, and why.
fn remote_kind(reference: &str) -> Option<&'static str> {
    let lower = reference.to_ascii_lowercase();
    if lower.contains("://") {
        Some("URL")
    } else if lower.starts_with("git@") || lower.starts_with("git::") || lower.contains(".git//") {
        Some("Git repository")
    } else if lower.contains("?ref=") || lower.contains("?version=") {
        Some("Git repository at a ref")
    } else if [
        "github.com/",
        "gitlab.com/",
        "bitbucket.org/",
        "dev.azure.com/",
    ]
    .iter()
    .any(|host| lower.starts_with(host))
    {
        Some("Git host")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::remote_kind;

    #[test]
    fn remote_references_are_recognized() {
        for r in [
            "https://github.com/org/repo//base?ref=v1",
            "github.com/org/repo/base?ref=main",
            "git@github.com:org/repo.git",
            "git::https://example.com/repo.git",
            "example.com/org/repo.git//base",
        ] {
            assert!(remote_kind(r).is_some(), "{r}");
        }
        for r in ["../base", "deployment.yaml", "components/x"] {
            assert!(remote_kind(r).is_none(), "{r}");
        }
    }
}
