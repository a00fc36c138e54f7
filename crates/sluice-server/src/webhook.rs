//! Webhooks from Git hosts: untrusted input. The shared secret is checked in constant time,
//! only the repository URL and ref are read, and the only effect is a reconcile request for
//! the StageSets whose sources match.

use ring::hmac;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::store::Snapshot;

/// Webhook secrets and limits.
#[derive(Clone, Default)]
pub struct WebhookConfig {
    /// GitHub's shared secret (`X-Hub-Signature-256`).
    pub github_secret: Option<Vec<u8>>,
    /// GitLab's token (`X-Gitlab-Token`).
    pub gitlab_secret: Option<Vec<u8>>,
    /// Key of the generic HMAC-SHA256 header (`X-Sluice-Signature: sha256=<hex>`).
    pub generic_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("github", &self.github_secret.is_some())
            .field("gitlab", &self.gitlab_secret.is_some())
            .field("generic", &self.generic_secret.is_some())
            .finish()
    }
}

/// Which host sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub.
    GitHub,
    /// GitLab.
    GitLab,
    /// Any sender signing with the generic header.
    Generic,
}

impl Provider {
    /// Its name in logs and audit lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Generic => "generic",
        }
    }
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No known provider header.
    #[error(
        "unknown webhook provider: expected X-Hub-Signature-256 (GitHub), X-Gitlab-Token (GitLab) or X-Sluice-Signature"
    )]
    UnknownProvider,
    /// The provider has no secret configured: its webhooks are refused.
    #[error("{0} webhooks are not configured on this server")]
    NotConfigured(&'static str),
    /// The signature or token is wrong.
    #[error("webhook signature does not verify")]
    BadSignature,
    /// The payload lacks what is needed or has the wrong types.
    #[error("malformed webhook payload: {0}")]
    Malformed(String),
}

/// Identifies the provider from the headers.
pub fn provider(header: impl Fn(&str) -> Option<String>) -> Result<Provider, WebhookError> {
    if header("x-hub-signature-256").is_some() || header("x-github-event").is_some() {
        Ok(Provider::GitHub)
    } else if header("x-gitlab-token").is_some() || header("x-gitlab-event").is_some() {
        Ok(Provider::GitLab)
    } else if header("x-sluice-signature").is_some() {
        Ok(Provider::Generic)
    } else {
        Err(WebhookError::UnknownProvider)
    }
}

fn verify_hmac(secret: &[u8], signature: Option<String>, body: &[u8]) -> bool {
    let Some(sig) = signature else {
        return false;
    };
    let Some(hex_sig) = sig.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = hex::decode(hex_sig) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &bytes).is_ok()
}

/// Checks the shared secret for `provider`, in constant time.
pub fn verify(
    config: &WebhookConfig,
    provider: Provider,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<(), WebhookError> {
    let ok = match provider {
        Provider::GitHub => {
            let secret = config
                .github_secret
                .as_deref()
                .ok_or(WebhookError::NotConfigured("GitHub"))?;
            verify_hmac(secret, header("x-hub-signature-256"), body)
        }
        Provider::Generic => {
            let secret = config
                .generic_secret
                .as_deref()
                .ok_or(WebhookError::NotConfigured("generic"))?;
            verify_hmac(secret, header("x-sluice-signature"), body)
        }
        Provider::GitLab => {
            let secret = config
                .gitlab_secret
                .as_deref()
                .ok_or(WebhookError::NotConfigured("GitLab"))?;
            let given = header("x-gitlab-token").unwrap_or_default();
            // Hash both sides so the comparison's time does not reveal the secret's length.
            let a = ring::digest::digest(&ring::digest::SHA256, secret);
            let b = ring::digest::digest(&ring::digest::SHA256, given.as_bytes());
            bool::from(a.as_ref().ct_eq(b.as_ref()))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

/// What a push names: the repository (every URL form the payload gives) and the ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Normalized repository URLs.
    pub urls: Vec<String>,
    /// The full ref (`refs/heads/main`).
    pub reference: String,
}

fn string_at<'a>(v: &'a Value, path: &str) -> Result<Option<&'a str>, WebhookError> {
    match v.pointer(path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WebhookError::Malformed(format!("{path} must be a string"))),
    }
}

/// Reads the repository URL and ref; nothing else of the payload is looked at.
pub fn parse_push(provider: Provider, body: &[u8]) -> Result<Push, WebhookError> {
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    if !payload.is_object() {
        return Err(WebhookError::Malformed("not a JSON object".into()));
    }
    let url_fields: &[&str] = match provider {
        Provider::GitHub => &[
            "/repository/clone_url",
            "/repository/html_url",
            "/repository/ssh_url",
            "/repository/git_url",
        ],
        Provider::GitLab => &[
            "/project/git_http_url",
            "/project/git_ssh_url",
            "/project/web_url",
            "/repository/git_http_url",
            "/repository/git_ssh_url",
            "/repository/homepage",
        ],
        Provider::Generic => &["/repository"],
    };
    let mut urls = Vec::new();
    for field in url_fields {
        if let Some(url) = string_at(&payload, field)? {
            urls.push(normalize_url(url));
        }
    }
    if urls.is_empty() {
        return Err(WebhookError::Malformed(format!(
            "no repository URL ({})",
            url_fields.join(", ")
        )));
    }
    let reference = string_at(&payload, "/ref")?
        .ok_or_else(|| WebhookError::Malformed("no ref".into()))?
        .to_owned();
    urls.sort();
    urls.dedup();
    Ok(Push { urls, reference })
}

/// One spelling for one repository: no scheme, user, `.git` suffix or trailing slash; host in
/// lower case; `git@host:path` as `host/path`.
pub fn normalize_url(url: &str) -> String {
    let mut s = url.trim();
    if let Some((_, rest)) = s.split_once("://") {
        s = rest;
    }
    let s = s.rsplit_once('@').map_or(s, |(_, rest)| rest);
    let s = match (s.find(':'), s.find('/')) {
        // scp-like `host:path` (a colon before any slash, not a port number).
        (Some(c), slash)
            if slash.is_none_or(|sl| c < sl)
                && !s[c + 1..].starts_with(|ch: char| ch.is_ascii_digit()) =>
        {
            format!("{}/{}", &s[..c], &s[c + 1..])
        }
        _ => s.to_owned(),
    };
    let s = s.trim_end_matches('/');
    let s = s.strip_suffix(".git").unwrap_or(s);
    match s.split_once('/') {
        Some((host, path)) => format!("{}/{}", host.to_ascii_lowercase(), path),
        None => s.to_ascii_lowercase(),
    }
}

fn ref_matches(wanted: Option<&str>, pushed: &str) -> bool {
    let Some(wanted) = wanted.filter(|w| !w.is_empty()) else {
        // No ref: the default branch, which a webhook does not name; reconciling is harmless.
        return pushed.starts_with("refs/heads/");
    };
    pushed == wanted
        || pushed.strip_prefix("refs/heads/") == Some(wanted)
        || pushed.strip_prefix("refs/tags/") == Some(wanted)
}

/// The StageSets (`namespace/name`) with a stage whose source is the pushed repository and ref.
pub fn matching_stagesets(snapshot: &Snapshot, push: &Push) -> Vec<String> {
    let mut out = Vec::new();
    for entry in &snapshot.stagesets {
        let namespace = entry.stageset.metadata.namespace.as_deref().unwrap_or("");
        let hit = entry.stageset.spec.stages.iter().any(|stage| {
            let (url, reference) =
                if let Some(git) = stage.source.as_ref().and_then(|s| s.git.as_ref()) {
                    (Some(git.url.clone()), git.reference.clone())
                } else if let Some(r) = &stage.source_ref {
                    let ns = r.namespace.as_deref().unwrap_or(namespace);
                    let source = snapshot.flux_sources.iter().find(|s| {
                        s["kind"] == "GitRepository"
                            && s["metadata"]["name"] == r.name.as_str()
                            && s["metadata"]["namespace"].as_str().unwrap_or(namespace) == ns
                    });
                    match source {
                        Some(s) => (
                            s["spec"]["url"].as_str().map(str::to_owned),
                            ["branch", "tag", "name"]
                                .iter()
                                .find_map(|k| s["spec"]["ref"][k].as_str().map(str::to_owned)),
                        ),
                        None => (None, None),
                    }
                } else {
                    (None, None)
                };
            url.is_some_and(|u| push.urls.contains(&normalize_url(&u)))
                && ref_matches(reference.as_deref(), &push.reference)
        });
        if hit {
            out.push(entry.key.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_spellings_agree() {
        let a = normalize_url("https://GitHub.com/Org/Repo.git");
        assert_eq!(a, "github.com/Org/Repo");
        assert_eq!(normalize_url("git@github.com:Org/Repo.git"), a);
        assert_eq!(normalize_url("ssh://git@github.com/Org/Repo/"), a);
        assert_eq!(
            normalize_url("https://git.example.com:8443/x/y"),
            "git.example.com:8443/x/y"
        );
    }

    #[test]
    fn refs() {
        assert!(ref_matches(Some("main"), "refs/heads/main"));
        assert!(ref_matches(Some("v1"), "refs/tags/v1"));
        assert!(!ref_matches(Some("main"), "refs/heads/dev"));
        assert!(ref_matches(None, "refs/heads/dev"));
        assert!(!ref_matches(None, "refs/tags/v1"));
    }

    #[test]
    fn payload_types_are_checked() {
        let bad = parse_push(
            Provider::GitHub,
            br#"{"repository": {"clone_url": 5}, "ref": "x"}"#,
        );
        assert!(matches!(bad, Err(WebhookError::Malformed(_))));
        let none = parse_push(Provider::GitHub, br#"{"ref": "refs/heads/main"}"#);
        assert!(matches!(none, Err(WebhookError::Malformed(_))));
        let not_json = parse_push(Provider::Generic, b"\xff\xfe");
        assert!(matches!(not_json, Err(WebhookError::Malformed(_))));
        let ok = parse_push(
            Provider::Generic,
            br#"{"repository": "https://h/x.git", "ref": "refs/heads/main"}"#,
        );
        assert_eq!(ok.map(|p| p.urls), Ok(vec!["h/x".to_owned()]));
    }
}
