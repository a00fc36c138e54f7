//! Arguments: one `Args` per subcommand, composed from flattened groups.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::logging::LoggingArgs;

/// Secure, staged GitOps delivery for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    /// Logging.
    #[command(flatten)]
    pub logging: LoggingArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a source (directory, Git repository, artifact or Flux source) to manifests.
    Build(Box<BuildArgs>),
    /// NetworkPolicy: evaluate, explain, generate, render, lint and diff.
    #[command(subcommand)]
    Netpol(crate::netpol::NetpolCommand),
    /// Plan a StageSet offline: pin every stage's source, render in order, check the Project.
    Plan(Box<crate::plan::PlanArgs>),
    /// Run the StageSet controller against the cluster (in-cluster or KUBECONFIG).
    Controller(Box<crate::controller::ControllerArgs>),
    /// Print the CustomResourceDefinitions (StageSet, Project) as a YAML stream.
    Crds,
    /// Run the API server (JWT auth, RBAC, TLS, webhooks); `--local DIR` needs no cluster.
    Server(Box<crate::server::ServerArgs>),
    /// Run the repo server: the render API behind mutual TLS, no Kubernetes credentials.
    RepoServer(Box<crate::server::RepoServerArgs>),
    /// Test RBAC policies offline.
    #[command(subcommand)]
    Rbac(crate::server::RbacCommand),
}

/// Output format of rendered manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A YAML stream (`---` separated).
    Yaml,
    /// A JSON array.
    Json,
}

/// `sluice build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A directory, a Git URL or repository path (with --ref), an http(s) .tar.gz artifact
    /// (with --digest), or a file holding a Flux source object.
    pub source: String,
    /// Directory inside the source to render.
    #[arg(long, default_value = ".")]
    pub path: PathBuf,
    /// Git branch, tag, full ref name or commit SHA (makes a local path a Git source).
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// Expected digest of an artifact: sha256:<hex>.
    #[arg(long)]
    pub digest: Option<String>,
    /// Engine: auto, plain, kustomize, helm or jsonnet.
    #[arg(long, default_value = "auto")]
    pub engine: String,
    /// Engines allowed to run (the tool allow-list).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "plain,kustomize,helm,jsonnet",
        env = "SLUICE_ENGINES"
    )]
    pub engines: Vec<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "yaml")]
    pub output: OutputFormat,
    /// Print counts by kind, total bytes and the sha256 of the output instead of the manifests.
    #[arg(long)]
    pub summary: bool,
    /// Fetch cache directory (default: $XDG_CACHE_HOME/sluice or ~/.cache/sluice).
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Helm options.
    #[command(flatten)]
    pub helm: HelmArgs,
    /// Jsonnet options.
    #[command(flatten)]
    pub jsonnet: JsonnetArgs,
    /// Tool locations and sandbox.
    #[command(flatten)]
    pub tools: ToolArgs,
    /// Credentials.
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Helm engine options.
#[derive(Debug, Args)]
#[command(next_help_heading = "Helm")]
pub struct HelmArgs {
    /// Release name for `helm template`.
    #[arg(long, default_value = "release")]
    pub release_name: String,
    /// Release namespace for `helm template`.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Values file relative to the chart (repeatable; must stay in the source tree).
    #[arg(long = "values", short = 'f')]
    pub values: Vec<String>,
}

/// Jsonnet engine options.
#[derive(Debug, Args)]
#[command(next_help_heading = "Jsonnet")]
pub struct JsonnetArgs {
    /// Jsonnet entrypoint relative to --path.
    #[arg(long, default_value = "main.jsonnet")]
    pub entrypoint: String,
    /// Top-level argument as a string: NAME=VALUE (repeatable).
    #[arg(long = "tla-str", value_name = "NAME=VALUE")]
    pub tla_str: Vec<String>,
    /// Top-level argument as Jsonnet code: NAME=CODE (repeatable).
    #[arg(long = "tla-code", value_name = "NAME=CODE")]
    pub tla_code: Vec<String>,
    /// External variable as a string: NAME=VALUE (repeatable).
    #[arg(long = "ext-str", value_name = "NAME=VALUE")]
    pub ext_str: Vec<String>,
    /// External variable as Jsonnet code: NAME=CODE (repeatable).
    #[arg(long = "ext-code", value_name = "NAME=CODE")]
    pub ext_code: Vec<String>,
}

/// Tool locations and the sandbox.
#[derive(Debug, Args)]
#[command(next_help_heading = "Tools and sandbox")]
pub struct ToolArgs {
    /// The kustomize binary (`kustomize`, or `kubectl` to run `kubectl kustomize`).
    #[arg(long, env = "SLUICE_KUSTOMIZE_TOOL")]
    pub kustomize_tool: Option<PathBuf>,
    /// The helm binary.
    #[arg(long, env = "SLUICE_HELM_TOOL")]
    pub helm_tool: Option<PathBuf>,
    /// Extra read-only path granted to sandboxed tools (repeatable; e.g. an interpreter).
    #[arg(
        long = "sandbox-read-path",
        env = "SLUICE_SANDBOX_READ_PATHS",
        value_delimiter = ':'
    )]
    pub sandbox_read_paths: Vec<PathBuf>,
    /// Run tools unconfined when the kernel cannot sandbox them (logged at security=4).
    #[arg(long)]
    pub allow_unsandboxed_tools: bool,
    /// Wall-clock limit for one tool run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub tool_timeout: u64,
    /// Address-space limit for one tool run, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub tool_memory_mib: u64,
    /// CPU-seconds limit for one tool run.
    #[arg(long, default_value_t = 120)]
    pub tool_cpu_seconds: u64,
}

/// Credentials, always read from a file or an environment variable, never from argv.
#[derive(Debug, Args)]
#[command(next_help_heading = "Credentials")]
pub struct CredentialArgs {
    /// File holding a bearer token (HTTP artifacts, Git over HTTPS).
    #[arg(long, conflicts_with = "bearer_token_env")]
    pub bearer_token_file: Option<PathBuf>,
    /// Environment variable holding a bearer token.
    #[arg(long)]
    pub bearer_token_env: Option<String>,
    /// User name for basic auth (with --password-file or --password-env).
    #[arg(long)]
    pub username: Option<String>,
    /// File holding the basic-auth password or token.
    #[arg(long, requires = "username", conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the basic-auth password or token.
    #[arg(long, requires = "username")]
    pub password_env: Option<String>,
    /// File holding an SSH private key (Git over SSH).
    #[arg(long, conflicts_with = "ssh_key_env")]
    pub ssh_key_file: Option<PathBuf>,
    /// Environment variable holding an SSH private key.
    #[arg(long)]
    pub ssh_key_env: Option<String>,
    /// known_hosts file for Git over SSH (strict host-key checking is always on).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// PEM bundle of CA certificates trusted for HTTPS downloads.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// Limits on what one render may cost.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub struct LimitArgs {
    /// Maximum combined bytes of manifests per render.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_manifest_bytes: u64,
    /// Maximum bytes of one manifest or values file.
    #[arg(long, default_value_t = 8 << 20)]
    pub max_file_bytes: u64,
    /// Maximum number of rendered objects.
    #[arg(long, default_value_t = 20_000)]
    pub max_objects: usize,
    /// Maximum entries in an artifact tarball or Git tree.
    #[arg(long, default_value_t = 10_000)]
    pub max_archive_entries: u64,
    /// Maximum total uncompressed bytes of an artifact or Git tree.
    #[arg(long, default_value_t = 256 << 20)]
    pub max_archive_bytes: u64,
    /// Maximum decompression ratio of an artifact.
    #[arg(long, default_value_t = 200)]
    pub max_archive_ratio: u64,
    /// Maximum bytes downloaded for one artifact.
    #[arg(long, default_value_t = 64 << 20)]
    pub max_download_bytes: u64,
    /// Maximum nodes created by YAML alias expansion per file.
    #[arg(long, default_value_t = 10_000)]
    pub max_yaml_alias_nodes: u64,
    /// Maximum YAML nesting depth.
    #[arg(long, default_value_t = 100)]
    pub max_yaml_depth: usize,
    /// Maximum Jsonnet stack depth.
    #[arg(long, default_value_t = 500)]
    pub jsonnet_max_stack: usize,
    /// Jsonnet evaluation time limit, in seconds.
    #[arg(long, default_value_t = 30)]
    pub jsonnet_timeout: u64,
    /// HTTP download time limit, in seconds.
    #[arg(long, default_value_t = 120)]
    pub http_timeout: u64,
}
