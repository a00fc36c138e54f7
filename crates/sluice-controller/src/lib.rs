//! The StageSet reconciler. Each call advances a StageSet by one step (pin, render, apply,
//! wait, prune, tear down) and says when to come back; it never sleeps, so one worker serves
//! many StageSets and every step is testable with a fake clock.
//!
//! It talks to the cluster through [`cluster::Cluster`]. [`memory::MemoryCluster`] is the
//! in-process double the tests use (see docs/testing.md for what it does not model); the
//! `kube`-backed implementation and the watch loop around [`reconcile::Reconciler`] are the
//! next step of the controller.

pub mod cluster;
pub mod inventory;
pub mod kube_cluster;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod reconcile;
pub mod run;
