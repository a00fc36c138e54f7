//! The manifest renderer (the repository server's core): a typed request (source, path,
//! engine, options, limits) becomes rendered objects, the pinned revision and diagnostics.
//!
//! Plain YAML/JSON and Jsonnet are rendered in-process; Kustomize and Helm by running the real
//! tools inside the sandbox. Every path a source names is confined to its tree, and every
//! reference that would reach the network is refused before a tool runs.

mod engine;
mod error;
mod limits;
mod objects;
mod request;
mod tools;
mod tree;

pub use engine::Engine;
pub use engine::jsonnet::{EVAL_SUBCOMMAND, eval_child_main};
pub use error::{Error, Result};
pub use limits::RenderLimits;
pub use objects::{Summary, summarize};
pub use request::{
    Diagnostic, EngineChoice, HelmOptions, JsonnetOptions, RenderRequest, Rendered, ToolInfo,
    ToolPaths, render,
};
