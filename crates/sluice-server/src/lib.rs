//! The sluice API server and the repo server.
//!
//! `sluice server` authenticates every call with a JSON Web Token (a local account's session,
//! an API key, a project role token or an OIDC ID token), authorizes it with Argo CD-style
//! RBAC (casbin), redacts Secrets in everything it returns, and audits every change.
//! `sluice repo-server` renders stages for it and for the controller behind mutual TLS.

pub mod api;
pub mod audit;
pub mod cluster;
pub mod error;
pub mod limiter;
pub mod oidc;
pub mod openapi;
pub mod rbac;
pub mod redact;
pub mod render;
pub mod repo_server;
pub mod serve;
pub mod state;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod webhook;

pub use api::{Server, ServerConfig};
pub use error::ApiError;

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// 16 random bytes as hex, for token ids.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    hex::encode(bytes)
}

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    // SystemRandom reads getrandom(2); it only fails when the kernel has no entropy source,
    // and then no key or token can be made safely: stop rather than continue with zeros.
    ring::rand::SystemRandom::new()
        .fill(buf)
        .unwrap_or_else(|_| panic!("the operating system's random source failed"));
}
