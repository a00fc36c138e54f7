//! The server's own state: accounts, the token signing key, revocations and project tokens.
//!
//! Local mode keeps it in a `0600` JSON file inside the served directory, written atomically
//! (a temporary file in the same directory, then a rename), so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// State file name inside the `--local` directory.
pub const STATE_FILE: &str = "sluice-server-state.json";
/// Where local mode hands over the initial admin password.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Errors reading or writing the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid state.
    #[error("{path}: not a sluice server state file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is readable by others.
    #[error("{path}: mode {mode:o} lets other users read the server's secrets; chmod 600 it")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

/// What a local account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Capability {
    /// Log in with a password.
    Login,
    /// Hold API keys.
    ApiKey,
}

/// A token the server issued and must be able to list and revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The token's `jti`.
    pub id: String,
    /// Issued at (seconds since the epoch).
    pub issued_at: i64,
    /// Expires at, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A local account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// bcrypt hash of the password (none: cannot log in with a password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// What it may do.
    pub capabilities: Vec<Capability>,
    /// Disabled accounts' tokens stop working at once.
    pub enabled: bool,
    /// Bumped at every password change; tokens carry the generation they were issued in.
    #[serde(default)]
    pub generation: u64,
    /// When the password last changed (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed_at: Option<i64>,
    /// Live API keys.
    #[serde(default)]
    pub api_keys: Vec<TokenRecord>,
}

impl Account {
    /// Whether the account has `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Everything the server persists.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerState {
    /// HMAC key for the server's own tokens (hex).
    pub signing_key: String,
    /// Local accounts by name.
    pub accounts: BTreeMap<String, Account>,
    /// Revoked token ids and when they would have expired (pruned after that).
    #[serde(default)]
    pub revoked: BTreeMap<String, i64>,
    /// Project role tokens: project → role → tokens.
    #[serde(default)]
    pub project_tokens: BTreeMap<String, BTreeMap<String, Vec<TokenRecord>>>,
}

impl ServerState {
    /// A fresh state: a random signing key and an `admin` account with `password_hash`.
    pub fn fresh(admin_password_hash: String) -> Self {
        let mut key = [0u8; 32];
        crate::fill_random(&mut key);
        let mut accounts = BTreeMap::new();
        accounts.insert(
            "admin".to_owned(),
            Account {
                password_hash: Some(admin_password_hash),
                capabilities: vec![Capability::Login],
                enabled: true,
                generation: fresh_generation(),
                password_changed_at: None,
                api_keys: Vec::new(),
            },
        );
        Self {
            signing_key: hex::encode(key),
            accounts,
            revoked: BTreeMap::new(),
            project_tokens: BTreeMap::new(),
        }
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub fn prune_revoked(&mut self, now: i64) {
        self.revoked.retain(|_, exp| *exp >= now);
    }
}

/// A generation no earlier account of the same name can have had: the creation time in
/// microseconds (tokens carry the generation they were issued in).
pub fn fresh_generation() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// A state file on disk.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state file inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join(STATE_FILE),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state, `None` when there is none yet. Refuses a file others can read.
    pub fn load(&self) -> Result<Option<ServerState>, StateError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StateError::Permissions {
                path: self.path.clone(),
                mode,
            });
        }
        let bytes = std::fs::read(&self.path).map_err(io)?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            })
    }

    /// Writes the state atomically with mode 0600.
    pub fn save(&self, state: &ServerState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        write_private(&self.path, &bytes)
    }
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        crate::random_id()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
