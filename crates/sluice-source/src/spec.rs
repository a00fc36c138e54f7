//! What to fetch, and with which credentials.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;
use crate::secret::Secret;

/// A source to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A directory on this machine, used as it is (its revision is the content digest).
    Local(PathBuf),
    /// A Git repository and a branch, tag or commit (`None`: the remote's HEAD).
    Git {
        /// `https://`, `http://`, `ssh://`, `file://` URL or a local repository path.
        url: String,
        /// Branch, tag, full ref name or commit SHA.
        reference: Option<String>,
    },
    /// A `.tar.gz` artifact and the digest it must have.
    Artifact {
        /// `http://` or `https://` URL.
        url: String,
        /// Expected digest of the downloaded bytes.
        digest: Digest,
        /// The revision the publisher reported (Flux `status.artifact.revision`), if any.
        revision: Option<String>,
    },
}

/// A `sha256:<hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The lower-case hex of the SHA-256.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A digest from raw SHA-256 output.
    pub fn from_sha256(bytes: &[u8]) -> Self {
        Self {
            hex: hex::encode(bytes),
        }
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidDigest {
            digest: s.to_owned(),
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self {
            hex: hex.to_ascii_lowercase(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// Credentials for a private source.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// Anonymous access.
    #[default]
    None,
    /// `Authorization: Bearer` (HTTP artifacts; Git over HTTPS).
    Bearer(Secret),
    /// HTTP basic auth (Git over HTTPS; HTTP artifacts).
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: Secret,
    },
    /// An SSH private key for Git over SSH, checked against a known-hosts file.
    SshKey {
        /// The private key (PEM/OpenSSH format).
        key: Secret,
        /// A known-hosts file; `None` uses the user's default with strict checking.
        known_hosts: Option<PathBuf>,
    },
}

impl Credentials {
    /// The secret values, so that they can be scrubbed from any text shown to a person.
    pub(crate) fn secrets(&self) -> Vec<&Secret> {
        match self {
            Credentials::None => Vec::new(),
            Credentials::Bearer(s) => vec![s],
            Credentials::Basic { password, .. } => vec![password],
            Credentials::SshKey { key, .. } => vec![key],
        }
    }

    /// The `Authorization` header value, for HTTP-based credentials.
    pub(crate) fn authorization(&self) -> Option<String> {
        use base64::Engine;
        match self {
            Credentials::Bearer(token) => Some(format!("Bearer {}", token.expose())),
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Credentials::None | Credentials::SshKey { .. } => None,
        }
    }
}
