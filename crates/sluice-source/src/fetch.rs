//! The fetch entry point and the cache layout shared by all source kinds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::archive::ArchiveLimits;
use crate::spec::{Credentials, SourceSpec};
use crate::{Error, Result};

/// Reports progress of long fetches (a terminal progress bar, or nothing).
pub trait Progress: Send + Sync {
    /// A fetch step starts; `total` bytes if known.
    fn start(&self, what: &str, total: Option<u64>);
    /// `bytes` more arrived.
    fn advance(&self, bytes: u64);
    /// The step ended.
    fn finish(&self);
}

/// How to fetch.
#[derive(Clone)]
pub struct FetchOptions {
    /// Root of the fetch cache (`git/` bare repositories, `trees/` pinned trees).
    pub cache_dir: PathBuf,
    /// Credentials for the source.
    pub credentials: Credentials,
    /// Limits on artifacts and trees.
    pub archive_limits: ArchiveLimits,
    /// Time limit for one HTTP download.
    pub http_timeout: Duration,
    /// Extra CA bundle (PEM) trusted for HTTPS instead of the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Progress reporting.
    pub progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for FetchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchOptions")
            .field("cache_dir", &self.cache_dir)
            .field("credentials", &self.credentials)
            .field("archive_limits", &self.archive_limits)
            .field("http_timeout", &self.http_timeout)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl FetchOptions {
    /// Options with defaults and the given cache directory.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            credentials: Credentials::None,
            archive_limits: ArchiveLimits::default(),
            http_timeout: Duration::from_secs(120),
            ca_file: None,
            progress: None,
        }
    }
}

/// A fetched source tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedSource {
    /// Root of the tree on disk (read-only by convention: it is shared by the cache).
    pub root: PathBuf,
    /// The pinned revision: `branch@sha1:<sha>`, `sha1:<sha>`, `sha256:<hex>` or `local`.
    pub revision: String,
    /// Whether the tree came from the cache without any download.
    pub from_cache: bool,
    /// Whether sluice extracted the tree itself, so no link in it leaves it (Git and artifact
    /// trees); a local directory is the user's and must be checked.
    pub links_vetted: bool,
}

/// Resolves, pins and fetches `spec` (or finds it in the cache).
pub fn fetch(spec: &SourceSpec, opts: &FetchOptions) -> Result<FetchedSource> {
    match spec {
        SourceSpec::Local(path) => {
            if !path.is_dir() {
                return Err(Error::LocalNotFound { path: path.clone() });
            }
            Ok(FetchedSource {
                root: std::fs::canonicalize(path).map_err(Error::io(path))?,
                revision: "local".into(),
                from_cache: false,
                links_vetted: false,
            })
        }
        SourceSpec::Git { url, reference } => {
            crate::git::fetch_git(url, reference.as_deref(), opts)
        }
        SourceSpec::Artifact {
            url,
            digest,
            revision,
        } => crate::http::fetch_artifact(url, digest, revision.as_deref(), opts),
    }
}

/// Fills a fresh directory with `fill` and moves it to `tree` atomically, so a tree in the
/// cache is always complete. A concurrent fetch of the same revision wins harmlessly.
pub(crate) fn install_tree(tree: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let parent = tree.parent().unwrap_or(tree);
    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(parent)
        .map_err(Error::io(parent))?;
    fill(staging.path())?;
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, tree) {
        let _ = std::fs::remove_dir_all(&staged);
        if !tree.is_dir() {
            return Err(Error::io(tree)(e));
        }
    }
    Ok(tree.to_path_buf())
}
