//! `sluice server` and `sluice repo-server` end to end: the real binary over real HTTPS
//! (rustls on both sides), real bcrypt, real casbin, real JWTs, a real JWKS server, and
//! Debian's `openssl s_client`/`s_server` for the TLS version checks.

mod harness;

mod auth;
mod cluster;
mod objects;
mod oidc;
mod rbac;
mod tls;
mod webhook;
