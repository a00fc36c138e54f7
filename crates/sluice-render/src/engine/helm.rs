//! Helm through the real `helm template`, after checking that every dependency is vendored
//! and every values file is inside the source tree.

use serde_json::Value;

use crate::request::{Context, ToolInfo};
use crate::{Error, Result, tools, tree};

pub(super) fn render(ctx: &mut Context<'_>) -> Result<(Vec<Value>, ToolInfo)> {
    ctx.check_symlinks(ctx.root)?;
    check_dependencies(ctx)?;
    let options = &ctx.request.helm;
    let chart_yaml = ctx.dir.join("Chart.yaml");
    let mut values = Vec::new();
    for reference in &options.values_files {
        let path = tree::resolve_within(ctx.root, ctx.dir, reference, &chart_yaml, "values file")?;
        if !path.is_file() {
            return Err(Error::Io {
                path: tree::shown(ctx.root, &path),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "values file not found"),
            });
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > ctx.request.limits.max_file_bytes {
            return Err(Error::FileTooLarge {
                file: tree::shown(ctx.root, &path),
                size,
                limit: ctx.request.limits.max_file_bytes,
            });
        }
        values.push(path);
    }
    let tool = tools::find(ctx.request.tools.helm.as_deref(), &["helm"]).map_err(|tried| {
        Error::ToolMissing {
            engine: "helm",
            tool: "helm",
            tried,
            flag: "--helm-tool",
        }
    })?;
    let version = tools::version(
        &tool,
        &["version", "--short"],
        &ctx.request.fetch.cache_dir,
        &ctx.sandbox,
    );
    let mut args: Vec<String> = vec![
        "template".into(),
        options.release_name.clone(),
        ctx.dir.display().to_string(),
        "--namespace".into(),
        options.namespace.clone(),
        "--include-crds".into(),
    ];
    for path in &values {
        args.push("--values".into());
        args.push(path.display().to_string());
    }
    // Helm's own state goes to scratch: nothing from the operator's home is read.
    let env = |scratch: &std::path::Path| {
        [
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ]
        .into_iter()
        .map(|(k, sub)| (k.into(), scratch.join(sub).into_os_string()))
        .collect()
    };
    let objects = super::run_tool(ctx, "helm template", &tool, args, env)?;
    Ok((
        objects,
        ToolInfo {
            path: tool,
            version,
        },
    ))
}

/// Every dependency must be vendored under `charts/` (or a `file://` path in the tree):
/// `helm template` must never reach a chart repository.
fn check_dependencies(ctx: &Context<'_>) -> Result<()> {
    let chart_yaml = ctx.dir.join("Chart.yaml");
    let shown = tree::shown(ctx.root, &chart_yaml);
    let text = std::fs::read_to_string(&chart_yaml).map_err(Error::io(&shown))?;
    let docs =
        sluice_manifest::parse_documents(&text, &ctx.request.limits.yaml).map_err(|source| {
            Error::Yaml {
                file: shown.clone(),
                source,
            }
        })?;
    let dependencies = docs
        .first()
        .and_then(|d| d.get("dependencies"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for dep in dependencies {
        let name = dep["name"].as_str().unwrap_or_default();
        let repository = dep["repository"].as_str().unwrap_or_default();
        if let Some(local) = repository.strip_prefix("file://") {
            tree::resolve_within(ctx.root, ctx.dir, local, &chart_yaml, "chart dependency")?;
            continue;
        }
        if vendored(ctx.dir, name) {
            continue;
        }
        tracing::warn!(
            security = 3,
            CWE = 829,
            file = %shown.display(),
            dependency = name,
            repository,
            "unvendored Helm dependency refused"
        );
        return Err(Error::RemoteReference {
            file: shown,
            reference: format!("{name} from {repository}"),
            why: "Helm dependency not vendored under charts/; run `helm dependency build` and commit charts/",
        });
    }
    Ok(())
}

fn vendored(chart: &std::path::Path, name: &str) -> bool {
    let charts = chart.join("charts");
    if charts.join(name).join("Chart.yaml").is_file() {
        return true;
    }
    std::fs::read_dir(&charts)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .any(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.starts_with(&format!("{name}-")) && file.ends_with(".tgz")
        })
}
