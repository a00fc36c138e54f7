//! StageSet stages outside the controller loop: loading and validating StageSets and Projects,
//! resolving and pinning every stage's source, rendering, checking project bounds, and the
//! order objects are applied in. `sluice plan` runs all of it offline; the controller reuses it.

pub mod bounds;
pub mod error;
pub mod health;
pub mod load;
pub mod order;
pub mod plan;

pub use error::{Error, Result};
