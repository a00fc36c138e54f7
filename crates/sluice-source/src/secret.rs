//! Secrets that cannot be printed by accident, and URL redaction.

use std::fmt;

/// A credential value. Its `Debug` and `Display` never show the content.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value (surrounding whitespace, such as a file's newline, is dropped).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().trim().to_owned())
    }

    /// The credential itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Replaces the user-info of every URL in `text` (`https://user:pass@host`) with `***`.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '\'' || c == '"'
            })
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***@");
                out.push_str(&authority[at + 1..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// Redacts URL user-info and every given secret value from `text`.
pub(crate) fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = redact_url(text);
    for secret in secrets {
        if secret.expose().len() >= 4 {
            out = out.replace(secret.expose(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_redacted() {
        assert_eq!(
            redact_url("fatal: https://bob:hunter2@git.example.com/r.git not found"),
            "fatal: https://***@git.example.com/r.git not found"
        );
        assert_eq!(redact_url("ssh://git@host:22/x"), "ssh://***@host:22/x");
        assert_eq!(redact_url("no url here"), "no url here");
    }

    #[test]
    fn secrets_never_format() {
        let s = Secret::new("hunter2\n");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(scrub("token hunter2 leaked", &[&s]), "token *** leaked");
    }
}
