//! Errors of loading and planning StageSets.

use std::path::PathBuf;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not YAML, or not the shape of the object it claims to be.
    #[error("{origin}: {message}")]
    Invalid {
        /// `file` or `file: Kind namespace/name`.
        origin: String,
        /// What is wrong, with the field path.
        message: String,
    },
    /// Something the plan needs is missing.
    #[error("{0}")]
    Missing(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
