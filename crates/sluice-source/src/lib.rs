//! Fetching sources: local trees, Git repositories and HTTP(S) tarball artifacts (the Flux
//! artifact format), pinned to an immutable revision and cached by it.
//!
//! A fetch always resolves the revision first (a commit SHA, an artifact digest), then
//! checks the cache; only a miss touches the network. Artifacts are verified against their
//! digest before a single entry is extracted, and extraction enforces path, link and size
//! rules so a hostile tarball cannot write outside its directory or exhaust the disk.

mod archive;
mod error;
mod fetch;
mod flux;
mod git;
mod http;
mod secret;
mod spec;

pub use archive::ArchiveLimits;
pub use error::{Error, Result};
pub use fetch::{FetchOptions, FetchedSource, Progress, fetch};
pub use flux::{artifact_of, read_flux_source};
pub use secret::{Secret, redact_url};
pub use spec::{Credentials, Digest, SourceSpec};
