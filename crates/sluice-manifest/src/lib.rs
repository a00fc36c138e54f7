//! Kubernetes manifests as data: a bounded YAML loader that resolves scalars the way
//! `kubectl` does (YAML 1.1 rules of go-yaml v2), and a deterministic YAML emitter.
//!
//! Every loader limit (alias expansion, nesting depth) exists because manifests come from
//! untrusted repositories: a few hundred bytes of YAML must not cost gigabytes.

mod emit;
mod error;
mod fast;
mod load;
mod scalar;

pub use emit::{to_yaml_document, write_yaml_stream};
pub use error::{Error, Result};
pub use load::{YamlLimits, parse_documents};
pub use scalar::resolve_plain;

/// A manifest document as JSON data (object key order is preserved).
pub type Value = serde_json::Value;
