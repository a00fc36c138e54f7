//! The rendering engines and their detection.

mod helm;
pub(crate) mod jsonnet;
mod kustomize;
mod plain;

use std::path::Path;
use std::str::FromStr;

use serde_json::Value;

use crate::request::{Context, ToolInfo};
use crate::{Error, Result};

/// A rendering engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Plain YAML and JSON files.
    Plain,
    /// `kustomize build` (or `kubectl kustomize`).
    Kustomize,
    /// `helm template`.
    Helm,
    /// Jsonnet, evaluated in-process.
    Jsonnet,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 4] = [
        Engine::Plain,
        Engine::Kustomize,
        Engine::Helm,
        Engine::Jsonnet,
    ];

    /// The engine's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Plain => "plain",
            Engine::Kustomize => "kustomize",
            Engine::Helm => "helm",
            Engine::Jsonnet => "jsonnet",
        }
    }

    /// Picks the engine for `dir`: kustomization, then chart, then Jsonnet, then plain files.
    pub fn detect(dir: &Path, jsonnet_entrypoint: &str) -> Option<Engine> {
        if kustomize::kustomization_file(dir).is_some() {
            Some(Engine::Kustomize)
        } else if dir.join("Chart.yaml").is_file() {
            Some(Engine::Helm)
        } else if dir.join(jsonnet_entrypoint).is_file() {
            Some(Engine::Jsonnet)
        } else if plain::has_manifests(dir) {
            Some(Engine::Plain)
        } else {
            None
        }
    }
}

impl FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| format!("unknown engine {s:?} (plain, kustomize, helm, jsonnet)"))
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) fn run(engine: Engine, ctx: &mut Context<'_>) -> Result<(Vec<Value>, Option<ToolInfo>)> {
    match engine {
        Engine::Plain => plain::render(ctx).map(|o| (o, None)),
        Engine::Kustomize => kustomize::render(ctx).map(|(o, t)| (o, Some(t))),
        Engine::Helm => helm::render(ctx).map(|(o, t)| (o, Some(t))),
        Engine::Jsonnet => jsonnet::render(ctx).map(|o| (o, None)),
    }
}

/// Runs a rendering tool in the sandbox over the source tree (cwd: the render directory,
/// scratch as the only writable place) and parses its YAML output into objects.
/// `env` is built from the scratch directory.
pub(crate) fn run_tool(
    ctx: &Context<'_>,
    name: &str,
    program: &Path,
    args: Vec<String>,
    env: impl FnOnce(&Path) -> Vec<(std::ffi::OsString, std::ffi::OsString)>,
) -> Result<Vec<Value>> {
    let scratch = tempfile::tempdir().map_err(Error::io(std::env::temp_dir()))?;
    let output = ctx.sandbox.run(&sluice_sandbox::ToolCommand {
        program: program.to_path_buf(),
        args: args.into_iter().map(Into::into).collect(),
        cwd: ctx.dir.to_path_buf(),
        read_paths: vec![ctx.root.to_path_buf()],
        scratch: scratch.path().to_path_buf(),
        env: env(scratch.path()),
        stdin: None,
    })?;
    if !output.status.success() {
        return Err(Error::ToolFailed {
            tool: name.into(),
            path: crate::tree::shown(ctx.root, ctx.dir),
            reason: output
                .failure_reason()
                .replace(&ctx.root.display().to_string(), "<source>"),
        });
    }
    objects_from_output(ctx, name, &output.stdout)
}

/// Parses a tool's YAML output into objects, within the render limits.
fn objects_from_output(ctx: &Context<'_>, tool: &str, stdout: &[u8]) -> Result<Vec<Value>> {
    let limits = &ctx.request.limits;
    if stdout.len() as u64 > limits.max_manifest_bytes {
        return Err(Error::TooLarge {
            limit: limits.max_manifest_bytes,
            detail: format!(" ({tool} output)"),
        });
    }
    let text = std::str::from_utf8(stdout).map_err(|_| Error::NotAManifest {
        file: format!("<{tool} output>").into(),
        reason: "output is not UTF-8".into(),
    })?;
    let file = Path::new(tool);
    let docs =
        sluice_manifest::parse_documents(text, &limits.yaml).map_err(|source| Error::Yaml {
            file: file.to_path_buf(),
            source,
        })?;
    let mut objects = Vec::new();
    crate::objects::collect(docs, file, limits, &mut objects)?;
    Ok(objects)
}
