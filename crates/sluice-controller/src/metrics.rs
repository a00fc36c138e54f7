//! What an operator graphs: reconciles by result and duration, stage durations, objects
//! applied / pruned / drifted, and per-stage readiness.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label pairs.
pub type Labels = Vec<(String, String)>;

/// The controller's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconcile steps by `result` (`success`, `error`).
    pub reconciles: Family<Labels, Counter>,
    /// Reconcile step duration.
    pub reconcile_seconds: Histogram,
    /// Time from a stage's start to its readiness.
    pub stage_seconds: Histogram,
    /// Objects applied.
    pub applied: Counter,
    /// Objects pruned.
    pub pruned: Counter,
    /// Objects found drifted and corrected.
    pub drifted: Counter,
    /// 1 when a stage is ready, by `stageset` and `stage`.
    pub stage_ready: Family<Labels, Gauge>,
    /// StageSets due for a reconcile (requeue time passed) plus those being reconciled.
    pub queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let reconciles = Family::<Labels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let stage_seconds = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        let (applied, pruned, drifted) =
            (Counter::default(), Counter::default(), Counter::default());
        let stage_ready = Family::<Labels, Gauge>::default();
        let queue_depth = Gauge::default();
        registry.register(
            "reconciles",
            "Reconcile steps by result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile step",
            reconcile_seconds.clone(),
        );
        registry.register(
            "stage_duration_seconds",
            "Time from a stage's start to its readiness",
            stage_seconds.clone(),
        );
        registry.register("objects_applied", "Objects applied", applied.clone());
        registry.register("objects_pruned", "Objects pruned", pruned.clone());
        registry.register(
            "objects_drifted",
            "Objects found drifted and corrected",
            drifted.clone(),
        );
        registry.register(
            "stage_ready",
            "1 when the stage is ready",
            stage_ready.clone(),
        );
        registry.register(
            "work_queue_depth",
            "StageSets due for a reconcile or being reconciled",
            queue_depth.clone(),
        );
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            stage_seconds,
            applied,
            pruned,
            drifted,
            stage_ready,
            queue_depth,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
