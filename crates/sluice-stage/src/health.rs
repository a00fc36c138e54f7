//! Readiness of applied objects, by the kstatus rules for the core kinds plus per-kind CEL
//! expressions from a stage's `readyChecks.exprs`. Pure functions of the live object, so the
//! controller's wait loop and the tests share them.

use serde_json::Value;
use sluice_api::ReadyExpr;

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "message")]
pub enum Health {
    /// Reconciled and ready.
    Current,
    /// Still rolling out; the message says what is awaited.
    InProgress(String),
    /// Will not become ready without a change; the stage fails at once.
    Failed(String),
}

impl Health {
    /// Whether the object is ready.
    pub fn is_current(&self) -> bool {
        matches!(self, Self::Current)
    }
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"] == status)
}

fn condition_message(object: &Value, kind: &str) -> String {
    condition(object, kind)
        .map(|c| {
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            match (reason.is_empty(), message.is_empty()) {
                (false, false) => format!("{reason}: {message}"),
                (false, true) => reason.to_owned(),
                _ => message.to_owned(),
            }
        })
        .unwrap_or_default()
}

/// `observedGeneration` behind `generation`: the object's controller has not seen the change.
/// Objects whose status has no `observedGeneration` (ConfigMaps, most third-party kinds) are
/// not judged by it, as in kstatus.
fn stale(object: &Value) -> Option<Health> {
    let generation = int(&object["metadata"]["generation"])?;
    let observed = int(&object["status"]["observedGeneration"])?;
    (observed < generation).then(|| {
        Health::InProgress(format!(
            "waiting for the controller to observe generation {generation}"
        ))
    })
}

/// For the workload kinds a missing `observedGeneration` means the controller has not
/// looked at the object at all yet.
fn unobserved(object: &Value) -> Option<Health> {
    if object["status"]["observedGeneration"].is_null() {
        return Some(Health::InProgress(
            "waiting for the controller to report status".into(),
        ));
    }
    stale(object)
}

/// Health by the built-in rules (without CEL).
pub fn builtin(object: &Value) -> Health {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or_default();
    match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => statefulset(object),
        ("apps", "DaemonSet") => daemonset(object),
        ("apps", "ReplicaSet") => replicaset(object),
        ("batch", "Job") => job(object),
        ("", "Pod") => pod(object),
        ("", "PersistentVolumeClaim") => pvc(object),
        ("", "Service") => service(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        _ => generic(object),
    }
}

/// Anything with `observedGeneration` and the kstatus conditions (`Ready`, `Reconciling`,
/// `Stalled`); objects with no status at all (ConfigMaps, Secrets, RBAC) are current at once.
pub fn generic(object: &Value) -> Health {
    if let Some(h) = stale(object) {
        return h;
    }
    if condition_is(object, "Stalled", "True") {
        return Health::Failed(condition_message(object, "Stalled"));
    }
    if condition_is(object, "Reconciling", "True") {
        return Health::InProgress(condition_message(object, "Reconciling"));
    }
    if condition_is(object, "Ready", "False") {
        return Health::InProgress(format!(
            "Ready is False: {}",
            condition_message(object, "Ready")
        ));
    }
    Health::Current
}

fn replicas(object: &Value) -> i64 {
    int(&object["spec"]["replicas"]).unwrap_or(1)
}

fn deployment(d: &Value) -> Health {
    if let Some(h) = unobserved(d) {
        return h;
    }
    if condition_is(d, "Progressing", "False")
        && condition(d, "Progressing").is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
    {
        return Health::Failed(format!(
            "progress deadline exceeded: {}",
            condition_message(d, "Progressing")
        ));
    }
    let want = replicas(d);
    let status = &d["status"];
    let updated = int(&status["updatedReplicas"]).unwrap_or(0);
    let total = int(&status["replicas"]).unwrap_or(0);
    let available = int(&status["availableReplicas"]).unwrap_or(0);
    let ready = int(&status["readyReplicas"]).unwrap_or(0);
    if updated < want {
        return Health::InProgress(format!("{updated}/{want} replicas updated"));
    }
    if total > updated {
        return Health::InProgress(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < want {
        return Health::InProgress(format!("{available}/{want} replicas available"));
    }
    if ready < want {
        return Health::InProgress(format!("{ready}/{want} replicas ready"));
    }
    Health::Current
}

fn statefulset(s: &Value) -> Health {
    if let Some(h) = unobserved(s) {
        return h;
    }
    let want = replicas(s);
    let status = &s["status"];
    let ready = int(&status["readyReplicas"]).unwrap_or(0);
    if ready < want {
        return Health::InProgress(format!("{ready}/{want} replicas ready"));
    }
    if s["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return Health::Current;
    }
    let partition = int(&s["spec"]["updateStrategy"]["rollingUpdate"]["partition"]).unwrap_or(0);
    let updated = int(&status["updatedReplicas"]).unwrap_or(0);
    if partition > 0 {
        // Only the pods above the partition roll: the rollout is done when they have.
        let expected = (want - partition).max(0);
        return if updated >= expected {
            Health::Current
        } else {
            Health::InProgress(format!(
                "{updated}/{expected} replicas above partition {partition} updated"
            ))
        };
    }
    if updated < want {
        return Health::InProgress(format!("{updated}/{want} replicas updated"));
    }
    match (
        status["currentRevision"].as_str(),
        status["updateRevision"].as_str(),
    ) {
        (Some(current), Some(update)) if current != update => {
            Health::InProgress(format!("rolling from revision {current} to {update}"))
        }
        _ => Health::Current,
    }
}

fn daemonset(d: &Value) -> Health {
    if let Some(h) = unobserved(d) {
        return h;
    }
    let status = &d["status"];
    let Some(desired) = int(&status["desiredNumberScheduled"]) else {
        return Health::InProgress("the DaemonSet controller has not reported yet".into());
    };
    let updated = int(&status["updatedNumberScheduled"]).unwrap_or(0);
    let available = int(&status["numberAvailable"]).unwrap_or(0);
    let ready = int(&status["numberReady"]).unwrap_or(0);
    if updated < desired {
        return Health::InProgress(format!("{updated}/{desired} nodes updated"));
    }
    if available < desired {
        return Health::InProgress(format!("{available}/{desired} nodes available"));
    }
    if ready < desired {
        return Health::InProgress(format!("{ready}/{desired} nodes ready"));
    }
    Health::Current
}

fn replicaset(r: &Value) -> Health {
    if let Some(h) = stale(r) {
        return h;
    }
    if condition_is(r, "ReplicaFailure", "True") {
        return Health::Failed(condition_message(r, "ReplicaFailure"));
    }
    let want = replicas(r);
    let status = &r["status"];
    for (field, what) in [
        ("fullyLabeledReplicas", "labeled"),
        ("availableReplicas", "available"),
        ("readyReplicas", "ready"),
    ] {
        let have = int(&status[field]).unwrap_or(0);
        if have < want {
            return Health::InProgress(format!("{have}/{want} replicas {what}"));
        }
    }
    Health::Current
}

fn job(j: &Value) -> Health {
    if condition_is(j, "Failed", "True") {
        return Health::Failed(condition_message(j, "Failed"));
    }
    if condition_is(j, "Complete", "True") {
        return Health::Current;
    }
    let succeeded = int(&j["status"]["succeeded"]).unwrap_or(0);
    let completions = int(&j["spec"]["completions"]).unwrap_or(1);
    Health::InProgress(format!("{succeeded}/{completions} completions"))
}

/// Container states that will not resolve on their own.
const STUCK: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "InvalidImageName",
];

fn pod(p: &Value) -> Health {
    let status = &p["status"];
    match status["phase"].as_str().unwrap_or("Pending") {
        "Succeeded" => return Health::Current,
        "Failed" => {
            return Health::Failed(
                status["message"]
                    .as_str()
                    .or(status["reason"].as_str())
                    .unwrap_or("the pod failed")
                    .to_owned(),
            );
        }
        _ => {}
    }
    for list in ["initContainerStatuses", "containerStatuses"] {
        for c in status[list].as_array().into_iter().flatten() {
            if let Some(reason) = c["state"]["waiting"]["reason"].as_str()
                && STUCK.contains(&reason)
            {
                return Health::Failed(format!(
                    "container {}: {reason}",
                    c["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    if condition_is(p, "Ready", "True") {
        Health::Current
    } else {
        Health::InProgress(format!(
            "pod {} and not ready",
            status["phase"].as_str().unwrap_or("Pending")
        ))
    }
}

fn pvc(p: &Value) -> Health {
    match p["status"]["phase"].as_str() {
        Some("Bound") => Health::Current,
        Some("Lost") => Health::Failed("the claim lost its volume".into()),
        other => Health::InProgress(format!("claim {}", other.unwrap_or("Pending"))),
    }
}

fn service(s: &Value) -> Health {
    if s["spec"]["type"] != "LoadBalancer" {
        return Health::Current;
    }
    let has_ingress = s["status"]["loadBalancer"]["ingress"]
        .as_array()
        .is_some_and(|a| !a.is_empty());
    if has_ingress {
        Health::Current
    } else {
        Health::InProgress("waiting for a load balancer address".into())
    }
}

fn crd(c: &Value) -> Health {
    if condition_is(c, "NamesAccepted", "False") {
        return Health::Failed(condition_message(c, "NamesAccepted"));
    }
    if condition_is(c, "Established", "True") {
        Health::Current
    } else {
        Health::InProgress("waiting for the CRD to be Established".into())
    }
}

/// CEL readiness expressions compiled for one kind.
pub struct CelCheck {
    api_version: String,
    kind: String,
    current: cel::Program,
    in_progress: Option<cel::Program>,
    failed: Option<cel::Program>,
    source: ReadyExpr,
}

impl std::fmt::Debug for CelCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelCheck")
            .field("source", &self.source)
            .finish()
    }
}

impl CelCheck {
    /// Compiles a stage's expressions; a syntax error names the field.
    pub fn compile(expr: &ReadyExpr) -> Result<Self, String> {
        let compile = |field: &str, text: &str| {
            cel::Program::compile(text)
                .map_err(|e| format!("readyChecks.exprs[{}].{field}: {e}", expr.kind))
        };
        Ok(Self {
            api_version: expr.api_version.clone(),
            kind: expr.kind.clone(),
            current: compile("current", &expr.current)?,
            in_progress: expr
                .in_progress
                .as_deref()
                .map(|t| compile("inProgress", t))
                .transpose()?,
            failed: expr
                .failed
                .as_deref()
                .map(|t| compile("failed", t))
                .transpose()?,
            source: expr.clone(),
        })
    }

    /// Whether this check is for `object`'s kind.
    pub fn applies_to(&self, object: &Value) -> bool {
        object["apiVersion"] == self.api_version.as_str() && object["kind"] == self.kind.as_str()
    }

    /// Evaluates against the live object: `failed` first, then `current`, then `inProgress`.
    /// The object's top-level fields (`metadata`, `spec`, `status`, ...) are the variables.
    pub fn evaluate(&self, object: &Value) -> Health {
        let mut context = cel::Context::default();
        if let Some(map) = object.as_object() {
            for (k, v) in map {
                if let Err(e) = context.add_variable(k.as_str(), v.clone()) {
                    return Health::Failed(format!("cannot bind {k} for CEL: {e}"));
                }
            }
        }
        // Fields an object lacks still have to resolve, or `status.x` on a fresh object
        // would be an error instead of "not ready yet".
        for k in ["metadata", "spec", "status"] {
            if object.get(k).is_none() {
                let _ = context.add_variable(k, serde_json::json!({}));
            }
        }
        let truthy = |program: &cel::Program, field: &str| -> Result<bool, String> {
            match program.execute(&context) {
                Ok(cel::Value::Bool(b)) => Ok(b),
                Ok(other) => Err(format!("{field} returned {other:?}, not a bool")),
                // A field that is not there yet (no status) means "not yet", not "broken".
                Err(e) if e.to_string().contains("No such key") => Ok(false),
                Err(e) => Err(format!("{field}: {e}")),
            }
        };
        let what = format!("{} {}", self.kind, self.source.current);
        if let Some(f) = &self.failed {
            match truthy(f, "failed") {
                Ok(true) => {
                    return Health::Failed(format!(
                        "failed expression {:?} is true",
                        self.source.failed.as_deref().unwrap_or_default()
                    ));
                }
                Ok(false) => {}
                Err(e) => return Health::Failed(e),
            }
        }
        match truthy(&self.current, "current") {
            Ok(true) => return Health::Current,
            Ok(false) => {}
            Err(e) => return Health::Failed(e),
        }
        if let Some(p) = &self.in_progress
            && let Err(e) = truthy(p, "inProgress")
        {
            return Health::Failed(e);
        }
        Health::InProgress(format!("waiting for {what}"))
    }
}

/// Health of an object: a matching CEL check wins over the built-in rules.
pub fn health(object: &Value, checks: &[CelCheck]) -> Health {
    match checks.iter().find(|c| c.applies_to(object)) {
        Some(check) => check.evaluate(object),
        None => builtin(object),
    }
}
