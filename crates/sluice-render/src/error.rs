use std::path::PathBuf;

/// Result alias for rendering.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a render failed. Messages name the file and the limit or flag involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fetching the source failed.
    #[error(transparent)]
    Source(#[from] sluice_source::Error),
    /// A path named by the source or the request leaves the source tree.
    #[error("{}: {reason}", path.display())]
    PathEscape {
        /// The offending path (relative to the source root where possible).
        path: PathBuf,
        /// What escapes and how.
        reason: String,
    },
    /// A symlink in the source tree resolves outside it.
    #[error("{}: symlink resolves outside the source tree", path.display())]
    SymlinkEscape {
        /// The symlink, relative to the source root.
        path: PathBuf,
    },
    /// The render path holds nothing an engine recognizes.
    #[error("{}: no manifests found (no *.yaml, *.yml or *.json, kustomization, Chart.yaml or main.jsonnet)", path.display())]
    NothingToRender {
        /// The render path.
        path: PathBuf,
    },
    /// The source needs an engine the operator switched off.
    #[error("the {engine} engine is disabled; enable it with --engines (currently: {enabled})")]
    EngineDisabled {
        /// The engine needed.
        engine: &'static str,
        /// The engines that are enabled.
        enabled: String,
    },
    /// A file is not a Kubernetes manifest.
    #[error("{}: {reason}", file.display())]
    NotAManifest {
        /// The file, relative to the source root.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file is not valid YAML or JSON, or trips a YAML limit.
    #[error("{}: {source}", file.display())]
    Yaml {
        /// The file, relative to the source root.
        file: PathBuf,
        /// The parser's error.
        #[source]
        source: sluice_manifest::Error,
    },
    /// A single file is larger than allowed.
    #[error("{}: {size} bytes exceeds the per-file limit of {limit} bytes (--max-file-bytes)", file.display())]
    FileTooLarge {
        /// The file.
        file: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The render produced more bytes than allowed.
    #[error("rendered manifests exceed {limit} bytes (--max-manifest-bytes){detail}")]
    TooLarge {
        /// The limit.
        limit: u64,
        /// Where it was crossed.
        detail: String,
    },
    /// The render produced more objects than allowed.
    #[error("render produced more than {limit} objects (--max-objects)")]
    TooManyObjects {
        /// The limit.
        limit: usize,
    },
    /// A kustomization or chart references something that would be fetched over the network.
    #[error("{}: remote reference {reference:?} is not allowed ({why}); vendor it into the source tree", file.display())]
    RemoteReference {
        /// The file holding the reference.
        file: PathBuf,
        /// The reference.
        reference: String,
        /// What kind of reference.
        why: &'static str,
    },
    /// A feature that runs code or fetches at build time is requested.
    #[error("{}: {feature} is not allowed: {why}", file.display())]
    Forbidden {
        /// The file requesting it.
        file: PathBuf,
        /// The feature.
        feature: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// The external tool an engine needs is not installed.
    #[error("{engine} engine: no {tool} found ({tried}); install it or pass {flag}")]
    ToolMissing {
        /// The engine.
        engine: &'static str,
        /// The tool looked for.
        tool: &'static str,
        /// Where it was looked for.
        tried: String,
        /// The flag that names it.
        flag: &'static str,
    },
    /// The external tool failed.
    #[error("{tool} failed on {}: {reason}", path.display())]
    ToolFailed {
        /// The tool.
        tool: String,
        /// The render path.
        path: PathBuf,
        /// Exit status and the tool's message.
        reason: String,
    },
    /// The sandbox refused or stopped the tool.
    #[error(transparent)]
    Sandbox(#[from] sluice_sandbox::Error),
    /// Jsonnet evaluation failed.
    #[error("{}: jsonnet: {message}", file.display())]
    Jsonnet {
        /// The entrypoint.
        file: PathBuf,
        /// The evaluator's message.
        message: String,
    },
    /// Jsonnet evaluation ran past its time limit.
    #[error("{}: jsonnet evaluation exceeded {limit:?} (--jsonnet-timeout)", file.display())]
    JsonnetTimeout {
        /// The entrypoint.
        file: PathBuf,
        /// The limit.
        limit: std::time::Duration,
    },
    /// An option is invalid.
    #[error("{0}")]
    InvalidOption(String),
    /// A local I/O operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
