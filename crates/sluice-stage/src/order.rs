//! Scope (cluster or namespaced), namespace defaulting and the order objects are applied in:
//! Namespaces and CRDs first, then other cluster-scoped objects, then namespaced ones.

use std::collections::BTreeMap;

use serde_json::Value;

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Scope {
    /// Cluster-scoped.
    Cluster,
    /// In a namespace.
    Namespaced,
}

/// Built-in cluster-scoped kinds, by `(group, kind)`.
const CLUSTER_KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("policy.networking.k8s.io", "ClusterNetworkPolicy"),
    ("sluice.dev", "Project"),
];

/// An object ready to apply: its identity resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prepared {
    /// `group/version` or `version`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// API group (`""` for the core group).
    #[serde(skip)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (after defaulting), `None` for cluster-scoped objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Scope.
    #[serde(skip)]
    pub scope: Scope,
    /// The object, namespace filled in.
    #[serde(skip)]
    pub object: Value,
}

impl Prepared {
    /// `Kind namespace/name` or `Kind name`, for messages.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {} {ns}/{}", self.api_version, self.kind, self.name),
            None => format!("{} {} {}", self.api_version, self.kind, self.name),
        }
    }

    fn phase(&self) -> u8 {
        match (self.group.as_str(), self.kind.as_str(), self.scope) {
            ("", "Namespace", _) | ("apiextensions.k8s.io", "CustomResourceDefinition", _) => 0,
            (_, _, Scope::Cluster) => 1,
            (_, _, Scope::Namespaced) => 2,
        }
    }
}

/// Scopes of custom kinds, learned from CRDs seen so far (earlier stages included).
#[derive(Debug, Default, Clone)]
pub struct Scopes {
    custom: BTreeMap<(String, String), Scope>,
}

impl Scopes {
    /// Records the kinds a CRD defines.
    pub fn learn(&mut self, object: &Value) {
        if object["kind"] != "CustomResourceDefinition" {
            return;
        }
        let spec = &object["spec"];
        if let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str())
        {
            let scope = if spec["scope"] == "Cluster" {
                Scope::Cluster
            } else {
                Scope::Namespaced
            };
            self.custom.insert((group.into(), kind.into()), scope);
        }
    }

    /// The scope of a kind; kinds nobody declared are taken as namespaced, like most custom
    /// resources.
    pub fn scope(&self, group: &str, kind: &str) -> Scope {
        if CLUSTER_KINDS.contains(&(group, kind)) {
            return Scope::Cluster;
        }
        self.custom
            .get(&(group.to_owned(), kind.to_owned()))
            .copied()
            .unwrap_or(Scope::Namespaced)
    }
}

/// Resolves identities, fills in `default_namespace` and sorts into apply order (stable within
/// a phase, so the render order is kept).
pub fn prepare(
    objects: &[Value],
    scopes: &mut Scopes,
    default_namespace: &str,
) -> Result<Vec<Prepared>, String> {
    for o in objects {
        scopes.learn(o);
    }
    let mut out = Vec::with_capacity(objects.len());
    for (i, o) in objects.iter().enumerate() {
        let api_version = o["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = o["kind"].as_str().unwrap_or_default().to_owned();
        let name = o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if api_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err(format!(
                "object {} has no apiVersion, kind or metadata.name",
                i + 1
            ));
        }
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g.to_owned())
            .unwrap_or_default();
        let scope = scopes.scope(&group, &kind);
        let mut object = o.clone();
        let namespace = match scope {
            Scope::Cluster => {
                // The API server ignores a namespace on a cluster-scoped object; drop it so
                // inventories and diffs agree with what is stored.
                if let Some(meta) = object["metadata"].as_object_mut() {
                    meta.remove("namespace");
                }
                None
            }
            Scope::Namespaced => {
                let ns = o["metadata"]["namespace"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(default_namespace)
                    .to_owned();
                object["metadata"]["namespace"] = Value::String(ns.clone());
                Some(ns)
            }
        };
        out.push(Prepared {
            api_version,
            group,
            kind,
            namespace,
            name,
            scope,
            object,
        });
    }
    out.sort_by_key(Prepared::phase);
    Ok(out)
}
