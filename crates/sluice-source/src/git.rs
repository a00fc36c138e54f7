//! Git sources through the system `git`, with an isolated configuration and only the
//! transports we allow (never `ext::`, which runs commands).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

use crate::archive::extract_tar;
use crate::fetch::{FetchOptions, FetchedSource, install_tree};
use crate::secret::{redact_url, scrub};
use crate::spec::Credentials;
use crate::{Error, Result};

/// A Git remote with the environment every command against it runs in.
struct Remote<'a> {
    url: String,
    shown: String,
    credentials: &'a Credentials,
    /// Holds the SSH key file for as long as the remote is used.
    _key_dir: Option<tempfile::TempDir>,
    ssh_command: Option<String>,
}

impl<'a> Remote<'a> {
    fn new(url: &str, credentials: &'a Credentials) -> Result<Self> {
        let url = normalize_url(url)?;
        let shown = redact_url(&url);
        let (key_dir, ssh_command) = match credentials {
            Credentials::SshKey { key, known_hosts } => {
                let dir = tempfile::tempdir().map_err(Error::io(std::env::temp_dir()))?;
                let key_path = dir.path().join("id");
                write_private(&key_path, key.expose())?;
                let hosts = known_hosts
                    .as_ref()
                    .map(|p| format!(" -o UserKnownHostsFile={}", shell_quote(p)))
                    .unwrap_or_default();
                let command = format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes{hosts}",
                    shell_quote(&key_path)
                );
                (Some(dir), Some(command))
            }
            _ => (None, None),
        };
        Ok(Self {
            url,
            shown,
            credentials,
            _key_dir: key_dir,
            ssh_command,
        })
    }

    fn command(&self, repo: Option<&Path>) -> Command {
        let mut cmd = Command::new("git");
        if let Some(repo) = repo {
            cmd.arg("--git-dir").arg(repo);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ALLOW_PROTOCOL", "file:http:https:ssh")
            .env("GIT_PROTOCOL_FROM_USER", "0")
            .env("GIT_ASKPASS", "/bin/true")
            .env_remove("SSH_ASKPASS")
            .stdin(Stdio::null());
        // Credentials go through the environment (readable only by this user), never argv.
        let mut config: Vec<(&str, String)> = vec![("protocol.version", "2".into())];
        if let Some(auth) = self.credentials.authorization() {
            config.push(("http.extraHeader", format!("Authorization: {auth}")));
        }
        cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (key, value)) in config.iter().enumerate() {
            cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
                .env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        if let Some(ssh) = &self.ssh_command {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        cmd
    }

    fn run(&self, action: &'static str, cmd: &mut Command) -> Result<Vec<u8>> {
        let output = cmd.output().map_err(|e| Error::Git {
            action,
            url: self.shown.clone(),
            message: format!("cannot run git: {e}"),
        })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(Error::Git {
            action,
            url: self.shown.clone(),
            message: scrub(stderr.trim(), &self.credentials.secrets()),
        })
    }
}

/// Fetches `reference` of the repository at `url`, pinned to its commit SHA.
pub(crate) fn fetch_git(
    url: &str,
    reference: Option<&str>,
    opts: &FetchOptions,
) -> Result<FetchedSource> {
    let remote = Remote::new(url, &opts.credentials)?;
    let wanted = reference.unwrap_or("HEAD");
    let (sha, full_ref) = if is_full_sha(wanted) {
        (wanted.to_ascii_lowercase(), None)
    } else {
        if wanted.len() >= 4 && wanted.len() < 40 && wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            tracing::debug!(
                reference = wanted,
                "short hex ref treated as a branch or tag name"
            );
        }
        let (sha, name) = ls_remote(&remote, wanted)?;
        (sha, Some(name))
    };
    let revision = match reference {
        Some(r) if !is_full_sha(r) => format!("{r}@sha1:{sha}"),
        _ => format!("sha1:{sha}"),
    };
    let tree = opts.cache_dir.join("trees").join("git").join(&sha);
    if tree.is_dir() {
        tracing::debug!(url = %remote.shown, %sha, "git tree cache hit");
        return Ok(FetchedSource {
            root: tree,
            revision,
            from_cache: true,
            links_vetted: true,
        });
    }
    if let Some(p) = &opts.progress {
        p.start(
            &format!("fetching {} at {}", remote.shown, &sha[..12]),
            None,
        );
    }
    let repo = bare_repo(&remote, &opts.cache_dir)?;
    fetch_commit(&remote, &repo, &sha, full_ref.as_deref(), wanted)?;
    let root = install_tree(&tree, |dir| {
        let mut child = remote
            .command(Some(&repo))
            .args(["archive", "--format=tar", &sha])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Git {
                action: "archive",
                url: remote.shown.clone(),
                message: e.to_string(),
            })?;
        let stdout = child.stdout.take().ok_or_else(|| Error::Git {
            action: "archive",
            url: remote.shown.clone(),
            message: "no output pipe".into(),
        })?;
        let extracted = extract_tar(stdout, &remote.shown, dir, &opts.archive_limits);
        let output = child.wait_with_output().map_err(Error::io(&repo))?;
        extracted?;
        if !output.status.success() {
            return Err(Error::Git {
                action: "archive",
                url: remote.shown.clone(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(())
    })?;
    if let Some(p) = &opts.progress {
        p.finish();
    }
    Ok(FetchedSource {
        root,
        revision,
        from_cache: false,
        links_vetted: true,
    })
}

/// Resolves a branch, tag or full ref name on the remote to `(commit sha, full ref name)`.
fn ls_remote(remote: &Remote<'_>, wanted: &str) -> Result<(String, String)> {
    let stdout = remote.run(
        "ls-remote",
        remote.command(None).args(["ls-remote", "--", &remote.url]),
    )?;
    let listing = String::from_utf8_lossy(&stdout);
    let refs: Vec<(&str, &str)> = listing.lines().filter_map(|l| l.split_once('\t')).collect();
    let find = |name: &str| {
        refs.iter()
            .find(|(_, r)| *r == name)
            .map(|(s, _)| s.to_string())
    };
    let candidates = [
        (wanted.to_owned(), wanted.to_owned()),
        (
            format!("refs/heads/{wanted}"),
            format!("refs/heads/{wanted}"),
        ),
        (
            format!("refs/tags/{wanted}^{{}}"),
            format!("refs/tags/{wanted}"),
        ),
        (format!("refs/tags/{wanted}"), format!("refs/tags/{wanted}")),
    ];
    for (lookup, full) in candidates {
        if let Some(sha) = find(&lookup) {
            return Ok((sha, full));
        }
    }
    Err(Error::RefNotFound {
        url: remote.shown.clone(),
        reference: wanted.to_owned(),
    })
}

fn bare_repo(remote: &Remote<'_>, cache: &Path) -> Result<PathBuf> {
    let key = hex::encode(&Sha256::digest(remote.url.as_bytes())[..12]);
    let repo = cache.join("git").join(format!("{key}.git"));
    if !repo.join("HEAD").exists() {
        std::fs::create_dir_all(&repo).map_err(Error::io(&repo))?;
        remote.run(
            "init",
            remote
                .command(None)
                .args(["init", "--quiet", "--bare"])
                .arg(&repo),
        )?;
    }
    Ok(repo)
}

fn fetch_commit(
    remote: &Remote<'_>,
    repo: &Path,
    sha: &str,
    full_ref: Option<&str>,
    wanted: &str,
) -> Result<()> {
    let has_commit = |sha: &str| {
        remote
            .command(Some(repo))
            .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_commit(sha) {
        return Ok(());
    }
    let what = full_ref.unwrap_or(sha);
    let shallow = remote.run(
        "fetch",
        remote.command(Some(repo)).args([
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth",
            "1",
            "--",
            &remote.url,
            what,
        ]),
    );
    if shallow.is_err() && full_ref.is_none() {
        // Some servers refuse to serve an unadvertised commit; fetch everything and look.
        remote.run(
            "fetch",
            remote.command(Some(repo)).args([
                "fetch",
                "--quiet",
                "--",
                &remote.url,
                "+refs/heads/*:refs/sluice/heads/*",
                "+refs/tags/*:refs/sluice/tags/*",
            ]),
        )?;
        if !has_commit(sha) {
            return Err(Error::RefNotFound {
                url: remote.shown.clone(),
                reference: sha.to_owned(),
            });
        }
        return Ok(());
    }
    shallow?;
    if full_ref.is_some() {
        let fetched = remote.run(
            "fetch",
            remote
                .command(Some(repo))
                .args(["rev-parse", "FETCH_HEAD^{commit}"]),
        )?;
        let fetched = String::from_utf8_lossy(&fetched).trim().to_owned();
        if fetched != sha {
            return Err(Error::RefMoved {
                url: remote.shown.clone(),
                reference: wanted.to_owned(),
                expected: sha.to_owned(),
                actual: fetched,
            });
        }
    }
    Ok(())
}

fn is_full_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Accepts URL forms git understands safely; a local path becomes an absolute path.
fn normalize_url(url: &str) -> Result<String> {
    let lower = url.to_ascii_lowercase();
    if ["https://", "http://", "ssh://", "file://"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Ok(url.to_owned());
    }
    if url.contains("::") || url.starts_with('-') {
        return Err(Error::UnsupportedUrl {
            url: redact_url(url),
        });
    }
    // scp-like `git@host:org/repo.git`
    if let Some((user_host, _)) = url.split_once(':')
        && user_host.contains('@')
        && !user_host.contains('/')
    {
        return Ok(url.to_owned());
    }
    let path = Path::new(url);
    if path.exists() {
        let absolute = std::fs::canonicalize(path).map_err(Error::io(path))?;
        return Ok(absolute.display().to_string());
    }
    Err(Error::UnsupportedUrl {
        url: redact_url(url),
    })
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(Error::io(path))?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(Error::io(path))
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_transports_are_refused() {
        assert!(normalize_url("ext::sh -c touch% /tmp/pwned").is_err());
        assert!(normalize_url("--upload-pack=touch /tmp/x").is_err());
        assert!(normalize_url("https://example.com/r.git").is_ok());
        assert!(normalize_url("git@example.com:org/r.git").is_ok());
    }
}
