//! Errors of the policy engine: every one names the input and the field at fault.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong reading or evaluating policies, clusters, probes or models.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not valid YAML or JSON.
    #[error("{origin}: {message}")]
    Syntax {
        /// File (or `-` for stdin).
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A field holds a value the API server would reject.
    #[error("{origin}: {object}: {field}: {message}")]
    Field {
        /// File (or `-` for stdin).
        origin: String,
        /// `Kind namespace/name`, or the document number when there is no name.
        object: String,
        /// Path of the field, e.g. `spec.ingress[0].from[1].ipBlock.cidr`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A document is not a kind this command reads.
    #[error("{origin}: document {index}: {message}")]
    Kind {
        /// File (or `-` for stdin).
        origin: String,
        /// Document number in the file (1-based).
        index: usize,
        /// What was found and what is accepted.
        message: String,
    },
    /// The same object appears twice.
    #[error("{object} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// `Kind namespace/name`.
        object: String,
        /// Where it was first seen.
        first: String,
        /// Where it was seen again.
        second: String,
    },
    /// A flow names a pod the cluster does not have, or is otherwise malformed.
    #[error("{0}")]
    Flow(String),
    /// An engine cannot express what the model asks for.
    #[error("engine {engine} cannot express {what}; {hint}")]
    Unsupported {
        /// The engine.
        engine: &'static str,
        /// What it cannot express (with the workload and rule).
        what: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// A request that makes no sense as a whole (e.g. an unknown engine).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A field error.
    pub(crate) fn field(
        origin: &str,
        object: &str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Field {
            origin: origin.to_owned(),
            object: object.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}
