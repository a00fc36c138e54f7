//! What the reconciler needs from a cluster, as the identity it acts for.

use serde_json::Value;

/// An object's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`None`: cluster-scoped).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of an object (its namespace as written).
    pub fn of(object: &Value) -> Self {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Self {
            api_version: s(&object["apiVersion"]),
            kind: s(&object["kind"]),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(str::to_owned),
            name: s(&object["metadata"]["name"]),
        }
    }

    /// One line: `apiVersion|kind|namespace|name` (the inventory format).
    pub fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.api_version,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// Parses [`ObjectKey::encode`]'s format.
    pub fn decode(line: &str) -> Option<Self> {
        let mut parts = line.split('|');
        let (a, k, n, name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (parts.next().is_none() && !a.is_empty() && !k.is_empty() && !name.is_empty()).then(|| {
            Self {
                api_version: a.into(),
                kind: k.into(),
                namespace: (!n.is_empty()).then(|| n.to_owned()),
                name: name.into(),
            }
        })
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Errors from the cluster, in the API server's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// 403: the identity may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 409: another field manager owns a field, or a resourceVersion moved.
    #[error("{0}")]
    Conflict(String),
    /// 422 / 400: the object is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Anything else (network, 5xx).
    #[error("{0}")]
    Unavailable(String),
}

/// The operations the reconciler performs, each as `user` (impersonated).
pub trait Cluster {
    /// Server-side apply with field manager `sluice`; with `force`, fields another manager
    /// owns are taken over instead of answering 409.
    fn apply_with(&self, user: &str, object: &Value, force: bool) -> Result<Value, ClusterError>;
    /// Server-side apply, forcing ownership (objects only sluice writes, like inventories).
    fn apply(&self, user: &str, object: &Value) -> Result<Value, ClusterError> {
        self.apply_with(user, object, true)
    }
    /// Reads one object (`None` when it does not exist).
    fn get(&self, user: &str, key: &ObjectKey) -> Result<Option<Value>, ClusterError>;
    /// Lists the objects of a kind in a namespace (`None`: cluster-scoped or all) whose labels
    /// match every `key=value` in `labels`.
    fn list(
        &self,
        user: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Value>, ClusterError>;
    /// Deletes one object (absent is fine).
    fn delete(&self, user: &str, key: &ObjectKey) -> Result<(), ClusterError>;
}
