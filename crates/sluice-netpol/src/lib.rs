//! sluice's NetworkPolicy engine: exact evaluation with upstream Kubernetes semantics,
//! explanations, the reachability matrix, rendering for four policy engines, generation of
//! least-privilege policies from manifests, lint and what-if diffs.

pub mod cidr;
pub mod cluster;
pub mod diff;
pub mod docs;
pub mod error;
pub mod eval;
pub mod generate;
pub mod labels;
pub mod lint;
pub mod matrix;
pub mod model;
pub mod policy;
pub mod render;
pub mod report;
pub mod synth;
pub mod workload;

pub use cluster::Cluster;
pub use docs::PolicySet;
pub use error::{Error, Result};
pub use eval::{Endpoint, Evaluator, Flow, Verdict};
pub use matrix::{Reachability, Summary};
pub use policy::{Direction, Policy, Protocol};
