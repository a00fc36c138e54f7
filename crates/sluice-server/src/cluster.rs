//! Cluster mode: StageSets, Projects and Flux GitRepositories watched through the Kubernetes
//! API as the server's own ServiceAccount; reconcile requests and gate approvals written as
//! annotations, Kubernetes Events naming the actor, and the server's state in a Secret.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use sluice_api::{Project, StageSet};
use sluice_controller::cluster::{Cluster, ObjectKey};
use sluice_controller::kube_cluster::KubeCluster;

use crate::error::ApiError;
use crate::state::ServerState;
use crate::store::{Snapshot, Store};

/// The Secret holding the server's state.
pub const STATE_SECRET: &str = "sluice-server-state";
/// The Secret handing over the initial admin password (deleted at the first change).
pub const INITIAL_PASSWORD_SECRET: &str = "sluice-initial-admin-password";
const STATE_KEY: &str = "state.json";

/// Errors talking to the cluster about the server's own state.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStateError {
    /// The API server refused or failed.
    #[error("Secret {namespace}/{name}: {source}")]
    Kube {
        /// Namespace.
        namespace: String,
        /// Secret name.
        name: String,
        /// Why.
        source: kube::Error,
    },
    /// The Secret does not hold valid state.
    #[error("Secret {0}: {1}")]
    Corrupt(String, String),
}

/// The server's handle on the cluster.
pub struct ClusterBackend {
    client: kube::Client,
    namespace: String,
    recorder: Recorder,
    live: Arc<KubeCluster>,
    state_version: tokio::sync::Mutex<Option<String>>,
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn kube_err(namespace: &str, name: &str) -> impl Fn(kube::Error) -> ClusterStateError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| ClusterStateError::Kube {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl ClusterBackend {
    /// A backend for the cluster `config` reaches; the state lives in `namespace`.
    pub fn new(config: kube::Config, namespace: &str) -> Result<Self, kube::Error> {
        let client = kube::Client::try_from(config.clone())?;
        let reporter = Reporter {
            controller: "sluice-server".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            live: Arc::new(KubeCluster::new(config, tokio::runtime::Handle::current())),
            client,
            namespace: namespace.to_owned(),
            state_version: tokio::sync::Mutex::new(None),
        })
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Reads the state Secret (`None` when there is none yet).
    pub async fn load_state(&self) -> Result<Option<ServerState>, ClusterStateError> {
        let secret = match self.secrets().get(STATE_SECRET).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(kube_err(&self.namespace, STATE_SECRET)(e)),
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(STATE_KEY))
            .map(|b| b.0.clone())
            .ok_or_else(|| {
                ClusterStateError::Corrupt(STATE_SECRET.into(), format!("no {STATE_KEY} key"))
            })?;
        let state = serde_json::from_slice(&bytes)
            .map_err(|e| ClusterStateError::Corrupt(STATE_SECRET.into(), e.to_string()))?;
        *self.state_version.lock().await = secret.metadata.resource_version.clone();
        Ok(Some(state))
    }

    /// Creates the state Secret and the initial password Secret (first start).
    pub async fn create_state(
        &self,
        state: &ServerState,
        initial_password: &str,
    ) -> Result<(), ClusterStateError> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let state_json = serde_json::to_vec(state).unwrap_or_default();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": STATE_SECRET, "namespace": self.namespace,
                          "labels": {"app.kubernetes.io/part-of": "sluice"}},
            "type": "Opaque",
            "data": {STATE_KEY: b64(&state_json)}
        }))
        .map_err(|e| ClusterStateError::Corrupt(STATE_SECRET.into(), e.to_string()))?;
        let created = self
            .secrets()
            .create(&PostParams::default(), &secret)
            .await
            .map_err(kube_err(&self.namespace, STATE_SECRET))?;
        *self.state_version.lock().await = created.metadata.resource_version.clone();
        let initial: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": INITIAL_PASSWORD_SECRET, "namespace": self.namespace,
                          "labels": {"app.kubernetes.io/part-of": "sluice"}},
            "type": "Opaque",
            "data": {"password": b64(initial_password.as_bytes())}
        }))
        .map_err(|e| ClusterStateError::Corrupt(INITIAL_PASSWORD_SECRET.into(), e.to_string()))?;
        self.secrets()
            .create(&PostParams::default(), &initial)
            .await
            .map_err(kube_err(&self.namespace, INITIAL_PASSWORD_SECRET))?;
        Ok(())
    }

    /// Writes the state, refusing to overwrite a version this replica has not seen.
    pub async fn save_state(&self, state: &ServerState) -> Result<(), ApiError> {
        let mut version = self.state_version.lock().await;
        let data = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(state).unwrap_or_default());
        let mut patch = json!({"data": {STATE_KEY: data}});
        if let Some(rv) = version.as_ref() {
            patch["metadata"] = json!({"resourceVersion": rv});
        }
        match self
            .secrets()
            .patch(STATE_SECRET, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(secret) => {
                *version = secret.metadata.resource_version.clone();
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(ApiError::Conflict(
                "the server state was changed by another replica; retry".into(),
            )),
            Err(e) => Err(ApiError::Unavailable(format!(
                "saving the server state: {e}"
            ))),
        }
    }

    /// Deletes the initial password Secret (absent is fine).
    pub async fn delete_initial_password(&self) {
        match self
            .secrets()
            .delete(INITIAL_PASSWORD_SECRET, &Default::default())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not delete the initial admin password Secret")
            }
        }
    }

    /// Sets an annotation on a StageSet (a merge patch: nothing else is touched).
    pub async fn annotate_stageset(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        let api: Api<StageSet> = Api::namespaced(self.client.clone(), namespace);
        let patch = json!({"metadata": {"annotations": {key: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| match e {
                kube::Error::Api(s) if s.code == 404 => {
                    ApiError::NotFound(format!("stageset {namespace}/{name}"))
                }
                other => ApiError::Unavailable(format!("the Kubernetes API: {other}")),
            })
    }

    /// Lists a project's token ids in its status (best effort; the state Secret is the
    /// authority for verification).
    pub async fn set_project_tokens(&self, project: &str, tokens: BTreeMap<String, Vec<String>>) {
        let api: Api<Project> = Api::all(self.client.clone());
        let patch = json!({"status": {"tokens": tokens}});
        if let Err(e) = api
            .patch_status(project, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(error = %e, project, "could not record project tokens in its status");
        }
    }

    /// Records a Kubernetes Event on a StageSet or Project (best effort).
    pub async fn record_event(
        &self,
        reference: ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, reason, "could not record an event");
        }
    }

    /// Reads a live object as the server's own identity (blocking: call off the runtime).
    pub fn live_object(&self, object: &Value) -> Result<Option<Value>, ApiError> {
        self.live
            .get("", &ObjectKey::of(object))
            .map_err(|e| ApiError::Unavailable(format!("reading the live state: {e}")))
    }
}

/// Watches StageSets, Projects and Flux GitRepositories and republishes the store's snapshot
/// after changes (coalesced every 200 ms). Runs until the process stops.
pub async fn watch(client: kube::Client, store: Arc<Store>) {
    let (stagesets, stageset_writer) = reflector::store::<StageSet>();
    let (projects, project_writer) = reflector::store::<Project>();
    let git = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository"),
        "gitrepositories",
    );
    let source_writer = reflector::store::Writer::<DynamicObject>::new(git.clone());
    let sources = source_writer.as_reader();
    let dirty = Arc::new(AtomicBool::new(false));
    let config = watcher::Config::default();
    fn mark<T>(dirty: Arc<AtomicBool>) -> impl FnMut(T) -> futures_util::future::Ready<()> {
        move |_| {
            dirty.store(true, Ordering::Release);
            futures_util::future::ready(())
        }
    }
    let s = reflector(
        stageset_writer,
        watcher(Api::<StageSet>::all(client.clone()), config.clone()),
    )
    .default_backoff()
    .for_each(mark(Arc::clone(&dirty)));
    let p = reflector(
        project_writer,
        watcher(Api::<Project>::all(client.clone()), config.clone()),
    )
    .default_backoff()
    .for_each(mark(Arc::clone(&dirty)));
    // Flux may not be installed: the watcher backs off and retries; StageSets still work.
    let g = reflector(
        source_writer,
        watcher(Api::<DynamicObject>::all_with(client, &git), config),
    )
    .default_backoff()
    .for_each(mark(Arc::clone(&dirty)));
    // Ready once StageSets and Projects were listed in full (Flux may not be installed, so its
    // sources are not waited for).
    let synced = Arc::new(AtomicBool::new(false));
    let sync = {
        let (s, p, synced, dirty) = (
            stagesets.clone(),
            projects.clone(),
            Arc::clone(&synced),
            Arc::clone(&dirty),
        );
        async move {
            let _ = s.wait_until_ready().await;
            let _ = p.wait_until_ready().await;
            synced.store(true, Ordering::Release);
            dirty.store(true, Ordering::Release);
        }
    };
    let publish = async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if !dirty.swap(false, Ordering::AcqRel) {
                continue;
            }
            let complete = synced.load(Ordering::Acquire);
            let snapshot = Snapshot::new(
                stagesets.state().iter().map(|s| (**s).clone()).collect(),
                projects.state().iter().map(|p| (**p).clone()).collect(),
                sources
                    .state()
                    .iter()
                    .filter_map(|o| serde_json::to_value(&**o).ok())
                    .map(|mut v| {
                        v["apiVersion"] = json!("source.toolkit.fluxcd.io/v1");
                        v["kind"] = json!("GitRepository");
                        v
                    })
                    .collect(),
                Vec::new(),
            );
            match snapshot {
                Ok(snapshot) => {
                    store.publish(snapshot);
                    if complete && !store.is_ready() {
                        store.mark_ready();
                        tracing::info!("StageSets and Projects listed; ready");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cluster snapshot refused"),
            }
        }
    };
    tokio::join!(s, p, g, sync, publish);
}
