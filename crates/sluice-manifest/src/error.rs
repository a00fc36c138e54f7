/// Result alias for manifest parsing.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a YAML or JSON document could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The text is not valid YAML.
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// Aliases expanded to more nodes than allowed (a "billion laughs" document).
    #[error(
        "YAML aliases expand to more than {limit} nodes (line {line}); \
         raise --max-yaml-alias-nodes if this is legitimate"
    )]
    AliasLimit {
        /// The limit in nodes.
        limit: u64,
        /// Line of the alias that crossed it.
        line: usize,
    },
    /// The document nests deeper than allowed.
    #[error(
        "YAML nests deeper than {limit} levels (line {line}); raise --max-yaml-depth if this is legitimate"
    )]
    DepthLimit {
        /// The limit in levels.
        limit: usize,
        /// Line where it was crossed.
        line: usize,
    },
    /// A mapping repeats a key.
    #[error("duplicate key {key:?} at line {line}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Line of the repetition.
        line: usize,
    },
    /// An alias names an anchor that was not defined before it.
    #[error("alias at line {line} refers to an unknown anchor")]
    UnknownAnchor {
        /// Line of the alias.
        line: usize,
    },
    /// A mapping key is itself a mapping or sequence.
    #[error("complex (non-scalar) mapping key at line {line} is not supported in manifests")]
    ComplexKey {
        /// Line of the key.
        line: usize,
    },
}

impl Error {
    /// Whether the error is a resource-exhaustion guard (as opposed to malformed input).
    pub fn is_limit(&self) -> bool {
        matches!(self, Error::AliasLimit { .. } | Error::DepthLimit { .. })
    }
}
