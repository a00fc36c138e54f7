//! Runs an external tool (kustomize, helm) confined: Landlock filesystem and network rules,
//! a seccomp filter that refuses every non-local socket, rlimits, a scrubbed environment, a
//! wall-clock timeout and capped output.
//!
//! The confinement is applied in the forked child just before `exec`, so the tool never runs
//! a single instruction unconfined. The policy is built in the parent (where allocation is
//! safe) and only moved into the kernel in the child.

mod confine;
mod error;
mod run;

pub use confine::{KernelSupport, kernel_support};
pub use error::{Error, Result};
pub use run::{ResourceLimits, Sandbox, SandboxPolicy, ToolCommand, ToolOutput};
