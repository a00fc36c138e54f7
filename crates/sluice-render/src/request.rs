//! The typed render API shared by the CLI, the controller and the repo server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_sandbox::{Sandbox, SandboxPolicy};
use sluice_source::{FetchOptions, SourceSpec, fetch};

use crate::engine::{self, Engine};
use crate::{Error, RenderLimits, Result, tree};

/// Which engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// Detect from the files at the render path.
    #[default]
    Auto,
    /// Force one engine.
    Fixed(Engine),
}

/// Options of the Helm engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmOptions {
    /// Release name passed to `helm template`.
    pub release_name: String,
    /// Release namespace.
    pub namespace: String,
    /// Values files, relative to the chart directory and confined to the source tree.
    pub values_files: Vec<String>,
}

impl Default for HelmOptions {
    fn default() -> Self {
        Self {
            release_name: "release".into(),
            namespace: "default".into(),
            values_files: Vec::new(),
        }
    }
}

/// Options of the Jsonnet engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonnetOptions {
    /// Entrypoint file relative to the render path.
    pub entrypoint: String,
    /// Top-level arguments: `(name, value, is_code)`.
    pub tla: Vec<(String, String, bool)>,
    /// External variables: `(name, value, is_code)`.
    pub ext_vars: Vec<(String, String, bool)>,
}

impl Default for JsonnetOptions {
    fn default() -> Self {
        Self {
            entrypoint: "main.jsonnet".into(),
            tla: Vec::new(),
            ext_vars: Vec::new(),
        }
    }
}

/// Where the external tools live (`None`: look on `PATH`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPaths {
    /// `kustomize` or `kubectl`.
    pub kustomize: Option<PathBuf>,
    /// `helm`.
    pub helm: Option<PathBuf>,
    /// The `sluice` binary, to evaluate Jsonnet in a sandboxed, killable child process
    /// (`None`: evaluate on a thread in this process).
    pub jsonnet_evaluator: Option<PathBuf>,
}

/// One render: a source, where in it, how, and within which limits.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    /// The source to fetch.
    pub source: SourceSpec,
    /// The directory to render, relative to the source root.
    pub path: PathBuf,
    /// The engine, or auto-detection.
    pub engine: EngineChoice,
    /// Engines the operator allows.
    pub enabled_engines: BTreeSet<Engine>,
    /// Helm options.
    pub helm: HelmOptions,
    /// Jsonnet options.
    pub jsonnet: JsonnetOptions,
    /// Render limits.
    pub limits: RenderLimits,
    /// External tool locations.
    pub tools: ToolPaths,
    /// How to fetch the source.
    pub fetch: FetchOptions,
    /// How to confine external tools.
    pub sandbox: SandboxPolicy,
}

impl RenderRequest {
    /// A request with defaults for everything but the source and the cache directory.
    pub fn new(source: SourceSpec, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            source,
            path: PathBuf::new(),
            engine: EngineChoice::Auto,
            enabled_engines: Engine::ALL.into_iter().collect(),
            helm: HelmOptions::default(),
            jsonnet: JsonnetOptions::default(),
            limits: RenderLimits::default(),
            tools: ToolPaths::default(),
            fetch: FetchOptions::new(cache_dir),
            sandbox: SandboxPolicy::default(),
        }
    }
}

/// The tool that rendered, for the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToolInfo {
    /// Absolute path of the binary.
    pub path: PathBuf,
    /// What it reports as its version.
    pub version: String,
}

/// Something worth telling the user that did not stop the render.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file concerned, relative to the source root.
    pub file: PathBuf,
    /// The message.
    pub message: String,
}

/// The result of a render.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The rendered objects, in a stable order.
    pub objects: Vec<Value>,
    /// The pinned revision of the source.
    pub revision: String,
    /// Whether the source came from the cache.
    pub from_cache: bool,
    /// The engine used.
    pub engine: Engine,
    /// The external tool used, if any.
    pub tool: Option<ToolInfo>,
    /// Warnings.
    pub diagnostics: Vec<Diagnostic>,
}

/// What an engine needs from the request, once the source is on disk.
pub(crate) struct Context<'a> {
    pub root: &'a Path,
    pub dir: &'a Path,
    pub request: &'a RenderRequest,
    pub sandbox: Sandbox,
    pub diagnostics: Vec<Diagnostic>,
    /// The tree was extracted by sluice (no link leaves it); skip the symlink walk.
    pub links_vetted: bool,
}

impl Context<'_> {
    /// Fails on a symlink below `dir` that leaves the source tree (local trees only).
    pub fn check_symlinks(&self, dir: &Path) -> Result<()> {
        if self.links_vetted {
            return Ok(());
        }
        tree::check_symlinks(self.root, dir)
    }
}

/// Fetches the source, picks the engine and renders.
pub fn render(request: &RenderRequest) -> Result<Rendered> {
    let fetched = fetch(&request.source, &request.fetch)?;
    let root = fetched.root.as_path();
    let dir = tree::render_dir(root, &request.path)?;
    let engine = match request.engine {
        EngineChoice::Fixed(engine) => engine,
        EngineChoice::Auto => {
            Engine::detect(&dir, &request.jsonnet.entrypoint).ok_or_else(|| {
                Error::NothingToRender {
                    path: tree::shown(root, &dir),
                }
            })?
        }
    };
    if !request.enabled_engines.contains(&engine) {
        tracing::warn!(
            security = 2,
            engine = engine.name(),
            "source needs a disabled engine"
        );
        return Err(Error::EngineDisabled {
            engine: engine.name(),
            enabled: request
                .enabled_engines
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(","),
        });
    }
    let mut ctx = Context {
        root,
        dir: &dir,
        request,
        sandbox: Sandbox::new(request.sandbox.clone()),
        diagnostics: Vec::new(),
        links_vetted: fetched.links_vetted,
    };
    let (objects, tool) = engine::run(engine, &mut ctx)?;
    Ok(Rendered {
        objects,
        revision: fetched.revision,
        from_cache: fetched.from_cache,
        engine,
        tool,
        diagnostics: ctx.diagnostics,
    })
}
