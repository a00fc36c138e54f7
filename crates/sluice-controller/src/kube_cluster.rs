//! [`Cluster`] through the real `kube` client: discovery per kind, server-side apply with field
//! manager `sluice`, every call impersonating the user it is made for.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::cluster::{Cluster, ClusterError, ObjectKey};

/// The `kube`-backed cluster. Its methods block on `runtime`, so call them from a thread that
/// is not a runtime worker (`spawn_blocking`, or a test's own thread).
pub struct KubeCluster {
    config: kube::Config,
    runtime: tokio::runtime::Handle,
    clients: Mutex<HashMap<String, kube::Client>>,
    kinds: Mutex<HashMap<(String, String), ApiResource>>,
}

fn error(e: kube::Error) -> ClusterError {
    match &e {
        kube::Error::Api(status) => {
            let message = status.message.clone();
            match status.code {
                403 => ClusterError::Forbidden(message),
                409 => ClusterError::Conflict(message),
                400 | 404 | 422 => ClusterError::Invalid(message),
                _ => ClusterError::Unavailable(message),
            }
        }
        other => ClusterError::Unavailable(other.to_string()),
    }
}

impl KubeCluster {
    /// A cluster reached with `config` (its own identity, used as the user `""`); calls run on
    /// `runtime`.
    pub fn new(config: kube::Config, runtime: tokio::runtime::Handle) -> Self {
        Self {
            config,
            runtime,
            clients: Mutex::new(HashMap::new()),
            kinds: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, user: &str) -> Result<kube::Client, ClusterError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(user) {
            return Ok(c.clone());
        }
        let mut config = self.config.clone();
        // The empty user is the controller's own identity.
        if !user.is_empty() {
            config.auth_info.impersonate = Some(user.to_owned());
        }
        // Entering the runtime lets the client spawn its connection tasks there.
        let _guard = self.runtime.enter();
        let client = kube::Client::try_from(config).map_err(error)?;
        clients.insert(user.to_owned(), client.clone());
        Ok(client)
    }

    fn api(&self, user: &str, key: &ObjectKey) -> Result<Api<DynamicObject>, ClusterError> {
        let client = self.client(user)?;
        let cache_key = (key.api_version.clone(), key.kind.clone());
        let cached = self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cache_key)
            .cloned();
        let resource = match cached {
            Some(r) => r,
            None => {
                let (group, version) = match key.api_version.rsplit_once('/') {
                    Some((g, v)) => (g, v),
                    None => ("", key.api_version.as_str()),
                };
                let gvk = GroupVersionKind::gvk(group, version, &key.kind);
                // Discovery as the controller itself: a tenant may lack discovery rights, and
                // the answer does not depend on who asks.
                let admin = self.client("")?;
                let (resource, _) = self
                    .runtime
                    .block_on(kube::discovery::pinned_kind(&admin, &gvk))
                    .map_err(error)?;
                self.kinds
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(cache_key, resource.clone());
                resource
            }
        };
        Ok(match &key.namespace {
            Some(ns) => Api::namespaced_with(client, ns, &resource),
            None => Api::all_with(client, &resource),
        })
    }
}

impl Cluster for KubeCluster {
    fn apply_with(&self, user: &str, object: &Value, force: bool) -> Result<Value, ClusterError> {
        let key = ObjectKey::of(object);
        let api = self.api(user, &key)?;
        let mut params = PatchParams::apply(sluice_api::FIELD_MANAGER);
        if force {
            params = params.force();
        }
        let applied = self
            .runtime
            .block_on(api.patch(&key.name, &params, &Patch::Apply(object)))
            .map_err(error)?;
        serde_json::to_value(applied).map_err(|e| ClusterError::Invalid(e.to_string()))
    }

    fn get(&self, user: &str, key: &ObjectKey) -> Result<Option<Value>, ClusterError> {
        let api = self.api(user, key)?;
        let object = self
            .runtime
            .block_on(api.get_opt(&key.name))
            .map_err(error)?;
        object
            .map(|o| serde_json::to_value(o).map_err(|e| ClusterError::Invalid(e.to_string())))
            .transpose()
    }

    fn list(
        &self,
        user: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Value>, ClusterError> {
        let probe = ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: String::new(),
        };
        let api = self.api(user, &probe)?;
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let params = kube::api::ListParams::default().labels(&selector);
        let list = self.runtime.block_on(api.list(&params)).map_err(error)?;
        list.items
            .into_iter()
            .map(|o| {
                let mut v =
                    serde_json::to_value(o).map_err(|e| ClusterError::Invalid(e.to_string()))?;
                // List items carry no apiVersion/kind of their own.
                v["apiVersion"] = Value::String(api_version.into());
                v["kind"] = Value::String(kind.into());
                Ok(v)
            })
            .collect()
    }

    fn delete(&self, user: &str, key: &ObjectKey) -> Result<(), ClusterError> {
        let api = self.api(user, key)?;
        match self
            .runtime
            .block_on(api.delete(&key.name, &DeleteParams::default()))
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(error(e)),
        }
    }
}
