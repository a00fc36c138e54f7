//! `StageSet`: an ordered list of stages, each rendered, applied, proven healthy in turn.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a StageSet delivers, stage by stage.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "StageSet",
    namespaced,
    status = "StageSetStatus",
    shortname = "ss",
    category = "sluice",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageSetSpec {
    /// The Project that bounds what this StageSet may fetch and touch (default: none, which a
    /// cluster policy may forbid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Steady-state reconcile and drift-correction interval (Go duration, e.g. `10m`).
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub interval: String,
    /// Wait before retrying a failed run (default: `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub retry_interval: Option<String>,
    /// Default time a stage may take to become ready.
    #[serde(default = "default_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub timeout: String,
    /// Stop reconciling (nothing is applied or pruned while suspended).
    #[serde(default)]
    pub suspend: bool,
    /// StageSets that must be Ready at their observed generation first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<NamespacedName>,
    /// Every cluster operation of this StageSet impersonates this ServiceAccount (in the
    /// StageSet's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: String,
    /// Namespace for namespaced objects that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// The stages, in rollout order.
    #[schemars(length(min = 1, max = 100))]
    pub stages: Vec<Stage>,
}

fn default_interval() -> String {
    "10m".into()
}

fn default_timeout() -> String {
    "5m".into()
}

fn default_true() -> bool {
    true
}

/// A name and an optional namespace (default: the referring object's).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedName {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One stage: a source rendered, applied and proven healthy before the next starts.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// Unique within the StageSet (a DNS label).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// A Flux source object whose `status.artifact` is fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<SourceRef>,
    /// An inline source (exactly one of `sourceRef` and `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<InlineSource>,
    /// Directory inside the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Render engine (default: detected from the directory's contents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// Delete objects that left the stage (only objects sluice applied).
    #[serde(default = "default_true")]
    pub prune: bool,
    /// Time this stage may take to become ready (default: the StageSet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub timeout: Option<String>,
    /// Impersonate this ServiceAccount instead of the StageSet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// How readiness is proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_checks: Option<ReadyChecks>,
    /// What to do when an object is owned by another field manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_policy: Option<ConflictPolicy>,
}

/// Kinds of Flux source objects.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum SourceKind {
    /// `source.toolkit.fluxcd.io` GitRepository.
    GitRepository,
    /// `source.toolkit.fluxcd.io` OCIRepository.
    #[serde(rename = "OCIRepository")]
    OciRepository,
    /// `source.toolkit.fluxcd.io` Bucket.
    Bucket,
    /// `source.toolkit.fluxcd.io` ExternalArtifact.
    ExternalArtifact,
}

/// A reference to a Flux source object.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRef {
    /// Kind.
    pub kind: SourceKind,
    /// Name.
    pub name: String,
    /// Namespace (default: the StageSet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// An inline source: exactly one of `git` and `http`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InlineSource {
    /// A Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// A `.tar.gz` over HTTP(S), verified against its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSource>,
}

/// A Git source.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSource {
    /// Repository URL (`https://`, `ssh://`, `file://`).
    pub url: String,
    /// Branch, tag, full ref or commit SHA (default: the remote's HEAD).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// An HTTP artifact.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSource {
    /// URL of the `.tar.gz`.
    pub url: String,
    /// `sha256:<hex>` the artifact must match before it is extracted.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub digest: String,
}

/// Render engines.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Plain YAML/JSON files.
    Plain,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
    /// Jsonnet.
    Jsonnet,
}

/// How a stage proves it is healthy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadyChecks {
    /// Objects to wait for (default: every object the stage applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ObjectRef>,
    /// CEL expressions per kind, for kinds kstatus does not know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exprs: Vec<ReadyExpr>,
    /// Do not wait at all: the stage is done once applied.
    #[serde(default)]
    pub disable_wait: bool,
}

/// An object by kind and name.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (namespaced kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// CEL readiness expressions for one kind; `current` is required.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadyExpr {
    /// `group/version` of the kind.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// True when the object is ready.
    pub current: String,
    /// True while it is still progressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// True when it has failed (the stage fails at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Conflict handling: a default and per-target rules (the first matching rule wins).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConflictPolicy {
    /// The default action.
    #[serde(default)]
    pub default: ConflictAction,
    /// Per-target overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ConflictRule>,
}

/// What to do on a field-ownership conflict.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ConflictAction {
    /// Fail the stage and name the other manager.
    #[default]
    Fail,
    /// Delete and re-create the object.
    Recreate,
    /// Leave the existing object alone.
    KeepExisting,
}

/// A per-target conflict rule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConflictRule {
    /// Objects the rule applies to.
    pub target: ConflictTarget,
    /// The action.
    pub action: ConflictAction,
}

/// Objects selected by a conflict rule (unset fields match everything).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConflictTarget {
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Observed state, in the kstatus shape Flux and kstatus tools read.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageSetStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Revisions pinned at the start of the current (or last) run, by stage name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub revisions: std::collections::BTreeMap<String, String>,
    /// Per-stage progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageStatus>,
    /// RFC 3339 start of the current (or last) run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_started_at: Option<String>,
    /// RFC 3339 end of the last run that succeeded (the next resync is `interval` later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_succeeded_at: Option<String>,
}

/// A condition (the `metav1.Condition` shape).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Reconciling` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason (`Progressing`, `Succeeded`, `SourceNotReady`, ...).
    pub reason: String,
    /// A message a person can act on.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Phases of a stage.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum StagePhase {
    /// Not started in this run.
    #[default]
    Pending,
    /// Rendering.
    Rendering,
    /// Applying.
    Applying,
    /// Waiting for readiness.
    Waiting,
    /// Applied and ready.
    Ready,
    /// Failed (later stages are not touched).
    Failed,
}

/// One stage's progress.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// Stage name.
    pub name: String,
    /// Phase.
    pub phase: StagePhase,
    /// The pinned revision it rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Objects in its inventory.
    #[serde(default)]
    pub objects: u32,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// What happened.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Where the inventory lives: ConfigMaps in the controller's namespace (sharded, so a large
    /// stage never overflows one object's size limit, and tenants cannot edit it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory_refs: Vec<String>,
}
