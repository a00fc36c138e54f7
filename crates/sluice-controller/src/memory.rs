//! An in-process cluster for tests and local runs: objects, resourceVersions, generations,
//! server-side apply by one field manager, and RBAC checked per impersonated user. It counts
//! every write request so tests can assert that a no-op reconcile writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde_json::Value;

use crate::cluster::{Cluster, ClusterError, ObjectKey};

/// One RBAC grant: `verbs` on `kind` (`*` for all) in `namespace` (`None`: everywhere).
#[derive(Debug, Clone)]
struct Grant {
    verbs: BTreeSet<String>,
    kind: String,
    namespace: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<ObjectKey, Value>,
    grants: BTreeMap<String, Vec<Grant>>,
    next_version: u64,
    writes: Vec<String>,
}

/// The in-memory cluster.
#[derive(Debug, Default)]
pub struct MemoryCluster {
    state: Mutex<State>,
}

fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

impl MemoryCluster {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panicking test thread must not hide the state from the assertions that follow.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets `user` do `verbs` on `kind` (`*` = any) in `namespace` (`None` = all namespaces
    /// and cluster-scoped objects).
    pub fn allow(&self, user: &str, verbs: &[&str], kind: &str, namespace: Option<&str>) {
        self.lock()
            .grants
            .entry(user.to_owned())
            .or_default()
            .push(Grant {
                verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
                kind: kind.to_owned(),
                namespace: namespace.map(str::to_owned),
            });
    }

    fn authorize(
        state: &State,
        user: &str,
        verb: &str,
        key: &ObjectKey,
    ) -> Result<(), ClusterError> {
        let allowed = state.grants.get(user).into_iter().flatten().any(|g| {
            (g.verbs.contains(verb) || g.verbs.contains("*"))
                && (g.kind == "*" || g.kind == key.kind)
                && (g.namespace.is_none() || g.namespace == key.namespace)
        });
        if allowed {
            return Ok(());
        }
        let group = key
            .api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("");
        let place = match &key.namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".into(),
        };
        Err(ClusterError::Forbidden(format!(
            "{} \"{}\" is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group \"{group}\"{place}",
            plural(&key.kind),
            key.name,
            plural(&key.kind)
        )))
    }

    /// Every write request so far (`apply Kind ns/name`, `delete ...`), in order.
    pub fn writes(&self) -> Vec<String> {
        self.lock().writes.clone()
    }

    /// Plays a controller or the kubelet: replaces an object's status.
    pub fn set_status(&self, key: &ObjectKey, status: Value) {
        let mut state = self.lock();
        state.next_version += 1;
        let version = state.next_version;
        if let Some(o) = state.objects.get_mut(key) {
            o["status"] = status;
            o["metadata"]["resourceVersion"] = Value::String(version.to_string());
        }
    }

    /// Reads an object without any authorization (for assertions).
    pub fn peek(&self, key: &ObjectKey) -> Option<Value> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object's key.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.lock().objects.keys().cloned().collect()
    }
}

impl Cluster for MemoryCluster {
    /// One field manager only: there is nobody to conflict with, so `force` changes nothing.
    fn apply_with(&self, user: &str, object: &Value, _force: bool) -> Result<Value, ClusterError> {
        let key = ObjectKey::of(object);
        if key.api_version.is_empty() || key.kind.is_empty() || key.name.is_empty() {
            return Err(ClusterError::Invalid(
                "apiVersion, kind and metadata.name are required".into(),
            ));
        }
        let mut state = self.lock();
        state.writes.push(format!("apply {key}"));
        let verb = if state.objects.contains_key(&key) {
            "patch"
        } else {
            "create"
        };
        Self::authorize(&state, user, verb, &key)?;
        state.next_version += 1;
        let version = state.next_version;
        let previous = state.objects.get(&key).cloned();
        let mut live = object.clone();
        // Server-owned fields survive an apply; the applied configuration replaces the rest
        // (one field manager: every field sluice stops setting is removed, as SSA does).
        let generation = match &previous {
            None => 1,
            Some(p) => {
                let before = p["metadata"]["generation"].as_i64().unwrap_or(1);
                let changed = p.get("spec") != object.get("spec");
                before + i64::from(changed)
            }
        };
        if let Some(p) = &previous {
            if let Some(status) = p.get("status") {
                live["status"] = status.clone();
            }
            live["metadata"]["uid"] = p["metadata"]["uid"].clone();
            live["metadata"]["creationTimestamp"] = p["metadata"]["creationTimestamp"].clone();
        } else {
            live["metadata"]["uid"] = Value::String(format!("uid-{version}"));
            live["metadata"]["creationTimestamp"] = Value::String("2026-01-01T00:00:00Z".into());
        }
        live["metadata"]["generation"] = Value::from(generation);
        live["metadata"]["resourceVersion"] = Value::String(version.to_string());
        state.objects.insert(key, live.clone());
        Ok(live)
    }

    fn get(&self, user: &str, key: &ObjectKey) -> Result<Option<Value>, ClusterError> {
        let state = self.lock();
        Self::authorize(&state, user, "get", key)?;
        Ok(state.objects.get(key).cloned())
    }

    fn list(
        &self,
        user: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Value>, ClusterError> {
        let state = self.lock();
        let probe = ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: String::new(),
        };
        Self::authorize(&state, user, "list", &probe)?;
        // Keys sort by apiVersion, kind, namespace: start at the first possible match.
        Ok(state
            .objects
            .range(probe.clone()..)
            .take_while(|(k, _)| {
                k.api_version == api_version
                    && k.kind == kind
                    && (namespace.is_none() || k.namespace.as_deref() == namespace)
            })
            .filter(|(k, o)| {
                k.api_version == api_version
                    && k.kind == kind
                    && (namespace.is_none() || k.namespace.as_deref() == namespace)
                    && labels
                        .iter()
                        .all(|(lk, lv)| o["metadata"]["labels"][*lk] == *lv)
            })
            .map(|(_, o)| o.clone())
            .collect())
    }

    fn delete(&self, user: &str, key: &ObjectKey) -> Result<(), ClusterError> {
        let mut state = self.lock();
        state.writes.push(format!("delete {key}"));
        Self::authorize(&state, user, "delete", key)?;
        state.objects.remove(key);
        Ok(())
    }
}
