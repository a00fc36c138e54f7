use std::path::PathBuf;

/// Result alias for source operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a source could not be fetched. Every message is already scrubbed of credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A digest is not `sha256:` followed by 64 hex digits.
    #[error("invalid digest {digest:?}: expected sha256:<64 hex digits>")]
    InvalidDigest {
        /// The digest as given.
        digest: String,
    },
    /// The URL scheme is not one sluice fetches from.
    #[error("unsupported source URL {url}: use https://, http://, ssh://, file:// or a local path")]
    UnsupportedUrl {
        /// The (redacted) URL.
        url: String,
    },
    /// A local directory does not exist.
    #[error("source directory {} does not exist or is not a directory", path.display())]
    LocalNotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A Git command failed.
    #[error("git {action} of {url} failed: {message}")]
    Git {
        /// What was being done (`ls-remote`, `fetch`, `archive`).
        action: &'static str,
        /// The (redacted) URL.
        url: String,
        /// Git's (scrubbed) message.
        message: String,
    },
    /// The Git ref does not exist on the remote.
    #[error(
        "ref {reference:?} not found in {url} (a branch, a tag, a full ref name or a 40-character commit SHA)"
    )]
    RefNotFound {
        /// The (redacted) URL.
        url: String,
        /// The ref as given.
        reference: String,
    },
    /// The ref moved between resolving and fetching it.
    #[error("ref {reference:?} of {url} moved from {expected} to {actual} while fetching; retry")]
    RefMoved {
        /// The (redacted) URL.
        url: String,
        /// The ref.
        reference: String,
        /// The commit resolved first.
        expected: String,
        /// The commit fetched.
        actual: String,
    },
    /// An HTTP request failed before a response arrived (DNS, TLS, connection, timeout).
    #[error("download of {url} failed: {message}")]
    Http {
        /// The (redacted) URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status.
    #[error("download of {url} failed: HTTP {status}{hint}")]
    HttpStatus {
        /// The (redacted) URL.
        url: String,
        /// The status code.
        status: u16,
        /// A hint for the user (e.g. about credentials).
        hint: &'static str,
    },
    /// The artifact's digest is not the expected one; nothing was extracted.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}; nothing was extracted")]
    DigestMismatch {
        /// The (redacted) URL.
        url: String,
        /// The digest that was asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// An archive entry tries to leave the extraction directory or is of a forbidden type.
    #[error("archive entry {entry:?} rejected: {reason}")]
    UnsafeEntry {
        /// The entry name.
        entry: String,
        /// Why it was rejected.
        reason: String,
        /// The CWE the attempt matches (22 path traversal, 59 link following, ...).
        cwe: u16,
    },
    /// An archive or download exceeds a limit.
    #[error("{what} exceeds the limit of {limit} ({flag})")]
    Limit {
        /// What was too large.
        what: String,
        /// The limit.
        limit: u64,
        /// The flag that raises it.
        flag: &'static str,
    },
    /// The archive is not a valid tar.gz.
    #[error("{url} is not a valid .tar.gz archive: {message}")]
    BadArchive {
        /// The (redacted) URL or path.
        url: String,
        /// The decoder's message.
        message: String,
    },
    /// A Flux source object file is unusable.
    #[error("{}: {reason}", path.display())]
    Flux {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
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
