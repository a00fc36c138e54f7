//! The control loop: watch StageSets, run one [`Reconciler`] step per event or requeue, and
//! write back what changed (finalizers on the object, the rest through the status
//! subresource). The reconciler blocks on the cluster, so steps run on the blocking pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use serde_json::json;
use sluice_api::{StagePhase, StageSet};
use sluice_stage::plan::PlanOptions;

use crate::kube_cluster::KubeCluster;
use crate::reconcile::Reconciler;

/// What can stop one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The API server refused a write.
    #[error("writing StageSet {name}: {source}")]
    Write {
        /// `namespace/name`.
        name: String,
        /// The cause.
        source: kube::Error,
    },
    /// The reconcile step panicked or was cancelled.
    #[error("reconcile step: {0}")]
    Join(#[from] tokio::task::JoinError),
}

struct Context {
    reconciler: Reconciler<'static, KubeCluster>,
    client: kube::Client,
    recorder: Recorder,
    /// When each StageSet is due again (`None` while it is being reconciled).
    schedule: std::sync::Mutex<std::collections::HashMap<String, Option<std::time::Instant>>>,
}

impl Context {
    /// Records when `key` is due (`None`: being reconciled now; `idle`: nothing scheduled)
    /// and updates the queue-depth gauge.
    fn set_due(&self, key: &str, due: Option<std::time::Instant>, idle: bool) {
        let mut schedule = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        if idle {
            schedule.remove(key);
        } else {
            schedule.insert(key.to_owned(), due);
        }
        let now = std::time::Instant::now();
        let depth = schedule
            .values()
            .filter(|d| d.is_none_or(|d| d <= now))
            .count();
        self.reconciler
            .metrics
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

/// The Kubernetes Events one step's transitions deserve: each stage phase change and each
/// change of the Ready condition.
pub fn transitions(before: &StageSet, after: &StageSet) -> Vec<Event> {
    let mut out = Vec::new();
    let stages_before = before
        .status
        .as_ref()
        .map(|s| s.stages.as_slice())
        .unwrap_or_default();
    for stage in after.status.iter().flat_map(|s| &s.stages) {
        let previous = stages_before
            .iter()
            .find(|s| s.name == stage.name)
            .map(|s| s.phase);
        if previous != Some(stage.phase) && stage.phase != StagePhase::Pending {
            let failed = stage.phase == StagePhase::Failed;
            out.push(Event {
                type_: if failed {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: format!("Stage{:?}", stage.phase),
                note: Some(
                    format!("stage {}: {}", stage.name, stage.message)
                        .chars()
                        .take(1000)
                        .collect(),
                ),
                action: "Reconcile".into(),
                secondary: None,
            });
        }
    }
    let ready = |s: &StageSet| {
        s.status
            .as_ref()
            .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready").cloned())
    };
    if let Some(now) = ready(after)
        && ready(before).is_none_or(|was| was.status != now.status || was.reason != now.reason)
    {
        out.push(Event {
            type_: if now.status == "False" {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: now.reason.clone(),
            note: Some(now.message.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    out
}

/// Options of the control loop.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Sources, cache and tools.
    pub plan: PlanOptions,
    /// The controller's namespace (inventories live there).
    pub namespace: String,
    /// Where the loop records what it does (served on `/metrics` by the binary).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Renders stages elsewhere (the repo server); `None`: in this process.
    pub renderer: Option<Arc<dyn crate::reconcile::StageRenderer>>,
}

/// Runs until `shutdown` completes.
pub async fn run(
    config: kube::Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), kube::Error> {
    let client = kube::Client::try_from(config.clone())?;
    // The cluster lives as long as the process; leaking it gives the reconciler a 'static
    // borrow without reference counting on every call.
    let cluster: &'static KubeCluster = Box::leak(Box::new(KubeCluster::new(
        config,
        tokio::runtime::Handle::current(),
    )));
    let mut reconciler = Reconciler::new(cluster, options.plan, &options.namespace, "");
    reconciler.metrics = options.metrics;
    reconciler.renderer = options.renderer;
    let reporter = Reporter {
        controller: "sluice".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let context = Arc::new(Context {
        reconciler,
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        schedule: std::sync::Mutex::default(),
    });
    let stagesets: Api<StageSet> = Api::all(client);
    Controller::new(stagesets, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::warn!(error = %e, "reconcile failed");
            }
        })
        .await;
    Ok(())
}

async fn reconcile(object: Arc<StageSet>, context: Arc<Context>) -> Result<Action, RunError> {
    let started = std::time::Instant::now();
    let key = format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or_default(),
        object.metadata.name.as_deref().unwrap_or_default()
    );
    context.set_due(&key, None, false);
    let result = step(object, context.clone()).await;
    let next = match &result {
        Ok(after) => *after,
        Err(_) => ERROR_REQUEUE,
    };
    // Zero means "until something changes": nothing is scheduled.
    context.set_due(
        &key,
        (!next.is_zero()).then(|| std::time::Instant::now() + next),
        next.is_zero(),
    );
    let metrics = &context.reconciler.metrics;
    metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "success" } else { "error" };
    metrics
        .reconciles
        .get_or_create(&vec![("result".to_owned(), outcome.to_owned())])
        .inc();
    result.map(|after| {
        if after.is_zero() {
            Action::await_change()
        } else {
            Action::requeue(after)
        }
    })
}

async fn step(object: Arc<StageSet>, context: Arc<Context>) -> Result<Duration, RunError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let mut stageset = (*object).clone();
    let worker = context.clone();
    let (stageset, after) = tokio::task::spawn_blocking(move || {
        let after = worker.reconciler.reconcile(&mut stageset, Utc::now());
        (stageset, after)
    })
    .await?;
    // Events are best effort: a missing right to create them must not stop delivery.
    let reference = object.object_ref(&());
    for event in transitions(&object, &stageset) {
        if let Err(e) = context.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason = %event.reason, "could not record an event");
        }
    }
    let api: Api<StageSet> = Api::namespaced(context.client.clone(), &namespace);
    let failed = |source| RunError::Write {
        name: format!("{namespace}/{name}"),
        source,
    };
    // Writes carry the resourceVersion they were computed from: a step that ran on a stale
    // cached copy fails with 409 and is retried on fresh data instead of rolling status back.
    let mut version = object.metadata.resource_version.clone();
    if stageset.metadata.finalizers != object.metadata.finalizers {
        let patch = json!({"metadata": {
            "finalizers": stageset.metadata.finalizers,
            "resourceVersion": version,
        }});
        let updated = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(failed)?;
        version = updated.metadata.resource_version;
    }
    let deleted = object.metadata.deletion_timestamp.is_some()
        && stageset
            .metadata
            .finalizers
            .as_ref()
            .is_none_or(|f| !f.iter().any(|x| x == crate::reconcile::FINALIZER));
    if !deleted && stageset.status != object.status {
        let patch = json!({"metadata": {"resourceVersion": version}, "status": stageset.status});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(failed)?;
    }
    Ok(after)
}

/// Wait after a failed write before trying again.
const ERROR_REQUEUE: Duration = Duration::from_secs(5);

fn error_policy(_: Arc<StageSet>, error: &RunError, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "retrying");
    Action::requeue(ERROR_REQUEUE)
}
