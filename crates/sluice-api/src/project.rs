//! `Project`: the tenancy boundary a StageSet names.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the StageSets of a project may fetch and touch.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Project",
    status = "ProjectStatus",
    category = "sluice",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectSpec {
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Source URLs its stages may fetch (globs: `https://git.example.com/team/*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_urls: Vec<String>,
    /// Namespaces its stages may write to (globs: `team-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_namespaces: Vec<String>,
    /// Cluster-scoped kinds its stages may create (none by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_scoped_kinds: Vec<ClusterKind>,
    /// Roles whose tokens reach only this project's resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
}

/// A cluster-scoped kind by API group (`""` for the core group) and kind (`*` for all).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterKind {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
}

/// A project role: RBAC policy lines and the SSO groups that hold it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectRole {
    /// Role name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Policy lines (`p, proj:<project>:<role>, stagesets, get, <project>/*, allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// SSO groups granted this role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Issued project tokens (by `jti`), so they can be listed and revoked.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// `role` → token ids.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tokens: std::collections::BTreeMap<String, Vec<String>>,
}
