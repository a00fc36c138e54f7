use std::path::PathBuf;
use std::time::Duration;

/// Result alias for sandbox operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a sandboxed tool run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel cannot confine the tool and the operator did not allow unconfined runs.
    #[error(
        "refusing to run {tool}: this kernel cannot sandbox external tools ({reason}); \
         pass --allow-unsandboxed-tools to run them without confinement"
    )]
    Unsupported {
        /// The tool that was not run.
        tool: String,
        /// What the kernel lacks.
        reason: String,
    },
    /// The tool binary was not found or is not executable.
    #[error("tool {path} not found or not executable")]
    ToolNotFound {
        /// Where the tool was expected.
        path: PathBuf,
    },
    /// Building the Landlock or seccomp policy failed.
    #[error("cannot build the sandbox policy: {0}")]
    Policy(String),
    /// Starting the tool failed (including a confinement step refused by the kernel).
    #[error("cannot start {tool}: {source}")]
    Spawn {
        /// The tool that failed to start.
        tool: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The tool ran past its wall-clock limit and was killed.
    #[error("{tool} was killed after the {limit:?} time limit (--tool-timeout)")]
    Timeout {
        /// The tool that was killed.
        tool: String,
        /// The limit it exceeded.
        limit: Duration,
    },
    /// The tool wrote more than the output limit and was killed.
    #[error("{tool} wrote more than {limit} bytes of output (--max-manifest-bytes); killed")]
    OutputTooLarge {
        /// The tool that was killed.
        tool: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Reading the tool's output or waiting for it failed.
    #[error("I/O error while running {tool}: {source}")]
    Io {
        /// The tool being run.
        tool: String,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
}
