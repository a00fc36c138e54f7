//! One reconcile step of a StageSet.
//!
//! A run pins every stage's revision first, then walks the stages in order: render (cached by
//! revision), check the Project, apply as the stage's ServiceAccount (Namespaces and CRDs
//! first, custom resources only once their CRDs are Established), prune what left the stage,
//! wait for readiness, and only then start the next stage. A failed stage stops the run. A
//! finished run is re-checked every `interval`: unchanged revisions re-render nothing and
//! write nothing unless an object drifted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sluice_api::{
    Condition, ConflictAction, ConflictPolicy, Project, SourceKind, SourceRef, StagePhase,
    StageSet, StageSetStatus, StageStatus,
};
use sluice_source::SourceSpec;
use sluice_stage::bounds::Bounds;
use sluice_stage::health::{CelCheck, Health, health};
use sluice_stage::load::parse_duration_ms;
use sluice_stage::order::{Prepared, Scopes, prepare};
use sluice_stage::plan::{Pinned, PlanOptions, pin_stage, render_stage, spec_at};

use crate::cluster::{Cluster, ClusterError, ObjectKey};
use crate::inventory;
use crate::metrics::Metrics;

/// The finalizer that makes deletion tear the stages down first.
pub const FINALIZER: &str = "sluice.dev/teardown";
/// How often a stage that is rolling out is polled.
pub const POLL: Duration = Duration::from_secs(2);

/// Reconciles StageSets against a cluster.
pub struct Reconciler<'a, C: Cluster> {
    /// The cluster.
    pub cluster: &'a C,
    /// Where sources and tools come from.
    pub options: PlanOptions,
    /// The controller's namespace (inventories live there).
    pub controller_namespace: String,
    /// The controller's own identity (reads StageSets, Projects, inventories).
    pub controller_user: String,
    /// Rendered stages by (StageSet, stage, revision, stage spec).
    /// One entry per StageSet stage: the last rendered (revision, spec) and its objects, so the
    /// cache is bounded by the number of stages, not by history.
    cache: Mutex<HashMap<String, (String, Vec<Value>)>>,
    renders: Mutex<u64>,
    /// Sources pinned recently, by source: StageSets sharing a repository resolve it once
    /// per [`PIN_TTL`] instead of once each.
    pins: Mutex<HashMap<String, (DateTime<Utc>, Pinned)>>,
    /// Pinned specs of Flux sources by (source, revision): the artifact a run pinned, even
    /// after the Flux object has moved on.
    flux_specs: Mutex<HashMap<String, Vec<(String, SourceSpec)>>>,
    /// Counters and gauges for `/metrics`.
    pub metrics: std::sync::Arc<Metrics>,
    /// Renders stages elsewhere (the repo server); `None`: in this process.
    pub renderer: Option<std::sync::Arc<dyn StageRenderer>>,
}

/// How long a pinned revision is reused for other stages naming the same source.
pub const PIN_TTL: Duration = Duration::from_secs(10);

/// Renders a stage from its pinned source somewhere else (the repo server); without one the
/// reconciler renders in this process.
pub trait StageRenderer: Send + Sync + std::fmt::Debug {
    /// The stage's objects, rendered from `source` exactly (no re-pinning).
    fn render(
        &self,
        stage: &sluice_api::Stage,
        source: &SourceSpec,
        release_name: &str,
        namespace: &str,
    ) -> Result<Vec<Value>, String>;
}

/// What a stage step ended with.
enum Step {
    /// Go on with the next stage now.
    Continue,
    /// Come back after this long.
    Wait(Duration),
    /// The stage failed for this condition reason (the run stops).
    Failed(&'static str),
}

fn now_text(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn duration(text: &str, fallback: Duration) -> Duration {
    parse_duration_ms(text)
        .map(Duration::from_millis)
        .unwrap_or(fallback)
}

/// Sets a condition, keeping its transition time when its status did not change.
pub fn set_condition(
    status: &mut StageSetStatus,
    kind: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
    generation: i64,
) {
    let time = match status.conditions.iter().find(|c| c.type_ == kind) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(now_text(now)),
    };
    status.conditions.retain(|c| c.type_ != kind);
    status.conditions.push(Condition {
        type_: kind.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: time,
        observed_generation: Some(generation),
    });
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

fn remove_condition(status: &mut StageSetStatus, kind: &str) {
    status.conditions.retain(|c| c.type_ != kind);
}

/// Whether `desired` is contained in `live`: every field sluice sets has its value.
pub fn contained(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| contained(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| contained(a, b))
        }
        _ => desired == live,
    }
}

impl<'a, C: Cluster> Reconciler<'a, C> {
    /// A reconciler acting for `controller_user`.
    pub fn new(
        cluster: &'a C,
        options: PlanOptions,
        controller_namespace: &str,
        controller_user: &str,
    ) -> Self {
        Self {
            cluster,
            options,
            controller_namespace: controller_namespace.into(),
            controller_user: controller_user.into(),
            cache: Mutex::new(HashMap::new()),
            renders: Mutex::new(0),
            pins: Mutex::new(HashMap::new()),
            flux_specs: Mutex::new(HashMap::new()),
            metrics: std::sync::Arc::default(),
            renderer: None,
        }
    }

    /// How many stage renders ran (cache misses).
    pub fn renders(&self) -> u64 {
        *self.renders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Advances `stageset` (its metadata and status are updated in place; the caller persists
    /// them) and returns when to reconcile it again.
    pub fn reconcile(&self, stageset: &mut StageSet, now: DateTime<Utc>) -> Duration {
        let after = self.step_stageset(stageset, now);
        let owner = format!(
            "{}/{}",
            stageset.metadata.namespace.as_deref().unwrap_or("default"),
            stageset.metadata.name.as_deref().unwrap_or_default()
        );
        let deleted = stageset.metadata.deletion_timestamp.is_some();
        for st in stageset.status.iter().flat_map(|s| &s.stages) {
            let labels = vec![
                ("stageset".to_owned(), owner.clone()),
                ("stage".to_owned(), st.name.clone()),
            ];
            if deleted {
                self.metrics.stage_ready.remove(&labels);
            } else {
                self.metrics
                    .stage_ready
                    .get_or_create(&labels)
                    .set(i64::from(st.phase == StagePhase::Ready));
            }
        }
        after
    }

    fn step_stageset(&self, stageset: &mut StageSet, now: DateTime<Utc>) -> Duration {
        let generation = stageset.metadata.generation.unwrap_or(1);
        let spec = stageset.spec.clone();
        let interval = duration(&spec.interval, Duration::from_secs(600));
        let retry = spec
            .retry_interval
            .as_deref()
            .map_or(interval, |r| duration(r, interval));
        if stageset.metadata.deletion_timestamp.is_some() {
            return self.teardown(stageset, now, retry);
        }
        let finalizers = stageset.metadata.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == FINALIZER) {
            finalizers.push(FINALIZER.into());
        }
        let namespace = stageset
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let status = stageset.status.get_or_insert_with(Default::default);

        if spec.suspend {
            set_condition(
                status,
                "Ready",
                "False",
                "Suspended",
                "reconciliation is suspended",
                now,
                generation,
            );
            remove_condition(status, "Reconciling");
            return interval;
        }
        for dep in &spec.depends_on {
            let key = ObjectKey {
                api_version: "sluice.dev/v1alpha1".into(),
                kind: "StageSet".into(),
                namespace: Some(dep.namespace.clone().unwrap_or_else(|| namespace.clone())),
                name: dep.name.clone(),
            };
            let ready = match self.cluster.get(&self.controller_user, &key) {
                Ok(Some(other)) => {
                    let generation = other["metadata"]["generation"].as_i64().unwrap_or(1);
                    other["status"]["observedGeneration"].as_i64() == Some(generation)
                        && other["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                }
                _ => false,
            };
            if !ready {
                set_condition(
                    status,
                    "Ready",
                    "False",
                    "DependencyNotReady",
                    &format!("waiting for StageSet {key} to be Ready"),
                    now,
                    generation,
                );
                return retry;
            }
        }
        let bounds = match &spec.project {
            None => None,
            Some(name) => match self.project(name) {
                Ok(b) => Some(b),
                Err(message) => {
                    set_condition(
                        status,
                        "Ready",
                        "False",
                        "ProjectViolation",
                        &message,
                        now,
                        generation,
                    );
                    set_condition(
                        status,
                        "Stalled",
                        "True",
                        "ProjectViolation",
                        &message,
                        now,
                        generation,
                    );
                    return retry;
                }
            },
        };

        // Decide whether a run is under way, due, or not needed.
        let same_generation = status.observed_generation == Some(generation);
        let shaped = status.stages.len() == spec.stages.len()
            && status
                .stages
                .iter()
                .zip(&spec.stages)
                .all(|(s, t)| s.name == t.name);
        let failed = status.stages.iter().any(|s| s.phase == StagePhase::Failed);
        let done = shaped && status.stages.iter().all(|s| s.phase == StagePhase::Ready);
        let active = same_generation && shaped && !failed && !done;
        if !active {
            let due = |from: Option<&str>, after: Duration| {
                parse_time(from).is_none_or(|t| {
                    now >= t + chrono::Duration::from_std(after).unwrap_or_default()
                })
            };
            if same_generation && shaped && failed && !due(status.run_started_at.as_deref(), retry)
            {
                return retry;
            }
            if same_generation && done && !due(status.last_succeeded_at.as_deref(), interval) {
                return interval;
            }
            // Pin every stage before anything renders.
            let mut revisions = BTreeMap::new();
            for stage in &spec.stages {
                match self.pin(stage, &namespace, now) {
                    Ok(p) => {
                        if let (Some(b), Some(url)) = (&bounds, &p.url)
                            && let Some(why) = b.check_source(url)
                        {
                            fail(status, now, generation, "ProjectViolation", &why);
                            return retry;
                        }
                        revisions.insert(stage.name.clone(), p.revision);
                    }
                    Err(e) => {
                        let message = format!("stage {}: {e}", stage.name);
                        set_condition(
                            status,
                            "Ready",
                            "False",
                            "SourceNotReady",
                            &message,
                            now,
                            generation,
                        );
                        return retry;
                    }
                }
            }
            if same_generation && done && revisions == status.revisions {
                // Nothing moved: correct drift, write nothing otherwise.
                let stageset_snapshot = stageset.clone();
                let drifted = self.correct_drift(&stageset_snapshot);
                let status = stageset.status.get_or_insert_with(Default::default);
                status.last_succeeded_at = Some(now_text(now));
                if let Err(message) = drifted {
                    set_condition(
                        status,
                        "Ready",
                        "False",
                        "ApplyFailed",
                        &message,
                        now,
                        generation,
                    );
                    return retry;
                }
                return interval;
            }
            let status = stageset.status.get_or_insert_with(Default::default);
            let previous: BTreeMap<String, Vec<String>> = status
                .stages
                .iter()
                .map(|s| (s.name.clone(), s.inventory_refs.clone()))
                .collect();
            status.observed_generation = Some(generation);
            status.run_started_at = Some(now_text(now));
            status.stages = spec
                .stages
                .iter()
                .map(|s| StageStatus {
                    name: s.name.clone(),
                    revision: revisions.get(&s.name).cloned(),
                    inventory_refs: previous.get(&s.name).cloned().unwrap_or_default(),
                    ..Default::default()
                })
                .collect();
            status.revisions = revisions;
            remove_condition(status, "Stalled");
            set_condition(
                status,
                "Reconciling",
                "True",
                "Progressing",
                "run started",
                now,
                generation,
            );
            set_condition(
                status,
                "Ready",
                "Unknown",
                "Progressing",
                "run started",
                now,
                generation,
            );
        }

        // Walk the stages.
        loop {
            let snapshot = stageset.clone();
            let status = stageset.status.get_or_insert_with(Default::default);
            let Some(index) = status
                .stages
                .iter()
                .position(|s| s.phase != StagePhase::Ready)
            else {
                set_condition(
                    status,
                    "Ready",
                    "True",
                    "Succeeded",
                    &format!("{} stages applied and ready", status.stages.len()),
                    now,
                    generation,
                );
                remove_condition(status, "Reconciling");
                status.last_succeeded_at = Some(now_text(now));
                return interval;
            };
            match self.step(&snapshot, index, bounds.as_ref(), now) {
                (stage_status, Step::Continue) => {
                    status.stages[index] = stage_status;
                }
                (stage_status, Step::Wait(after)) => {
                    let message = format!("stage {}: {}", stage_status.name, stage_status.message);
                    status.stages[index] = stage_status;
                    set_condition(
                        status,
                        "Reconciling",
                        "True",
                        "Progressing",
                        &message,
                        now,
                        generation,
                    );
                    return after;
                }
                (stage_status, Step::Failed(reason)) => {
                    let message = format!("stage {}: {}", stage_status.name, stage_status.message);
                    status.stages[index] = stage_status;
                    fail(status, now, generation, reason, &message);
                    return retry;
                }
            }
        }
    }

    fn pin(
        &self,
        stage: &sluice_api::Stage,
        namespace: &str,
        now: DateTime<Utc>,
    ) -> Result<Pinned, String> {
        // The namespace only matters for a sourceRef without one of its own.
        let key = match &stage.source_ref {
            Some(r) => format!(
                "ref|{}|{}",
                r.namespace.as_deref().unwrap_or(namespace),
                serde_json::to_string(r).unwrap_or_default()
            ),
            None => format!(
                "inline|{}",
                serde_json::to_string(&stage.source).unwrap_or_default()
            ),
        };
        let ttl = chrono::Duration::from_std(PIN_TTL).unwrap_or_default();
        if let Some((at, pinned)) = self
            .pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && now >= *at
            && now < *at + ttl
        {
            return Ok(pinned.clone());
        }
        let pinned = match &stage.source_ref {
            // In the cluster, a sourceRef is the Flux object's current artifact.
            Some(r) if self.options.sources_dir.is_none() => self.pin_flux(r, namespace)?,
            _ => pin_stage(stage, namespace, &self.options)?,
        };
        self.pins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (now, pinned.clone()));
        Ok(pinned)
    }

    fn flux_key(reference: &SourceRef, namespace: &str) -> String {
        format!(
            "{:?}/{}/{}",
            reference.kind,
            reference.namespace.as_deref().unwrap_or(namespace),
            reference.name
        )
    }

    /// Reads a Flux source object from the cluster and pins its artifact.
    fn pin_flux(&self, reference: &SourceRef, namespace: &str) -> Result<Pinned, String> {
        let kind = match reference.kind {
            SourceKind::GitRepository => "GitRepository",
            SourceKind::OciRepository => "OCIRepository",
            SourceKind::Bucket => "Bucket",
            SourceKind::ExternalArtifact => "ExternalArtifact",
        };
        let ns = reference.namespace.as_deref().unwrap_or(namespace);
        let mut last_error = String::new();
        let mut object = None;
        for version in ["v1", "v1beta2"] {
            let key = ObjectKey {
                api_version: format!("source.toolkit.fluxcd.io/{version}"),
                kind: kind.into(),
                namespace: Some(ns.into()),
                name: reference.name.clone(),
            };
            match self.cluster.get(&self.controller_user, &key) {
                Ok(Some(o)) => {
                    object = Some(o);
                    break;
                }
                Ok(None) => last_error = format!("{kind} {ns}/{} does not exist", reference.name),
                Err(e) => last_error = format!("reading {kind} {ns}/{}: {e}", reference.name),
            }
        }
        let object = object.ok_or(last_error)?;
        let spec = sluice_source::artifact_of(&object)?;
        let fetched = sluice_source::fetch(
            &spec,
            &sluice_source::FetchOptions::new(&self.options.cache_dir),
        )
        .map_err(|e| e.to_string())?;
        self.flux_specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(Self::flux_key(reference, namespace))
            .or_default()
            .push((fetched.revision.clone(), spec.clone()));
        // Runs of several StageSets may be on different revisions of one source at once; a
        // few recent ones are plenty.
        if let Some(list) = self
            .flux_specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&Self::flux_key(reference, namespace))
        {
            list.dedup_by(|a, b| a.0 == b.0);
            let excess = list.len().saturating_sub(8);
            list.drain(..excess);
        }
        Ok(Pinned {
            shown: format!("{kind} {ns}/{}", reference.name),
            url: object["spec"]["url"].as_str().map(str::to_owned),
            revision: fetched.revision,
            spec,
        })
    }

    /// The pinned source of a stage at `revision`.
    fn spec_for(
        &self,
        stage: &sluice_api::Stage,
        namespace: &str,
        revision: &str,
    ) -> Result<SourceSpec, String> {
        let Some(reference) = stage
            .source_ref
            .as_ref()
            .filter(|_| self.options.sources_dir.is_none())
        else {
            return spec_at(stage, namespace, &self.options, revision);
        };
        let key = Self::flux_key(reference, namespace);
        if let Some(spec) = self
            .flux_specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .and_then(|list| list.iter().find(|(pinned, _)| pinned == revision))
            .map(|(_, spec)| spec.clone())
        {
            return Ok(spec);
        }
        // After a restart: the object may still point at the pinned artifact.
        let pinned = self.pin_flux(reference, namespace)?;
        if pinned.revision == revision {
            Ok(pinned.spec)
        } else {
            Err(format!(
                "{} moved from the pinned revision {revision} to {} during the run; the next run uses it",
                pinned.shown, pinned.revision
            ))
        }
    }

    fn project(&self, name: &str) -> Result<Bounds, String> {
        let key = ObjectKey {
            api_version: "sluice.dev/v1alpha1".into(),
            kind: "Project".into(),
            namespace: None,
            name: name.into(),
        };
        let object = self
            .cluster
            .get(&self.controller_user, &key)
            .map_err(|e| format!("reading Project {name}: {e}"))?
            .ok_or_else(|| format!("Project {name} does not exist"))?;
        let project: Project =
            serde_json::from_value(object).map_err(|e| format!("Project {name}: {e}"))?;
        Bounds::new(&project).map_err(|e| e.to_string())
    }

    fn user(stageset: &StageSet, stage: usize) -> String {
        let ns = stageset.metadata.namespace.as_deref().unwrap_or("default");
        let sa = stageset.spec.stages[stage]
            .service_account_name
            .as_deref()
            .unwrap_or(&stageset.spec.service_account_name);
        format!("system:serviceaccount:{ns}:{sa}")
    }

    /// The stage's objects in apply order, from the cache when its revision was rendered.
    fn desired(&self, stageset: &StageSet, index: usize) -> Result<Vec<Prepared>, String> {
        let namespace = stageset.metadata.namespace.as_deref().unwrap_or("default");
        let name = stageset.metadata.name.as_deref().unwrap_or_default();
        let default_ns = stageset
            .spec
            .target_namespace
            .clone()
            .unwrap_or_else(|| namespace.into());
        let mut scopes = Scopes::default();
        let mut out = Vec::new();
        for (i, stage) in stageset.spec.stages.iter().enumerate().take(index + 1) {
            let revision = stageset
                .status
                .as_ref()
                .and_then(|s| s.revisions.get(&stage.name))
                .cloned()
                .ok_or_else(|| format!("stage {} has no pinned revision", stage.name))?;
            let slot = format!("{namespace}/{name}/{}", stage.name);
            let version = format!(
                "{revision}/{}",
                serde_json::to_string(stage).unwrap_or_default()
            );
            let cached = self
                .cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&slot)
                .filter(|(v, _)| *v == version)
                .map(|(_, objects)| objects.clone());
            let objects = match cached {
                Some(o) => o,
                None => {
                    let spec = self.spec_for(stage, namespace, &revision)?;
                    let objects = match &self.renderer {
                        Some(remote) => remote.render(stage, &spec, name, &default_ns)?,
                        None => render_stage(stage, &spec, &self.options, name, &default_ns)?.0,
                    };
                    *self.renders.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                    self.cache
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(slot, (version, objects.clone()));
                    objects
                }
            };
            // Earlier stages teach the scopes of the kinds their CRDs define.
            let prepared = prepare(&objects, &mut scopes, &default_ns)?;
            if i == index {
                out = prepared
                    .into_iter()
                    .map(|mut p| {
                        let labels = &mut p.object["metadata"]["labels"];
                        labels["sluice.dev/stageset"] =
                            Value::String(format!("{namespace}.{name}"));
                        labels["sluice.dev/stage"] = Value::String(stage.name.clone());
                        p
                    })
                    .collect();
            }
        }
        Ok(out)
    }

    fn step(
        &self,
        stageset: &StageSet,
        index: usize,
        bounds: Option<&Bounds>,
        now: DateTime<Utc>,
    ) -> (StageStatus, Step) {
        let stage = &stageset.spec.stages[index];
        let mut st = stageset
            .status
            .as_ref()
            .map(|s| s.stages[index].clone())
            .unwrap_or_default();
        let user = Self::user(stageset, index);
        let fail_with = |mut st: StageStatus, reason: &'static str, message: String| {
            st.phase = StagePhase::Failed;
            st.message = message;
            st.finished_at = Some(now_text(now));
            (st, Step::Failed(reason))
        };
        let prepared = match self.desired(stageset, index) {
            Ok(d) => d,
            Err(e) => return fail_with(st, "RenderFailed", e),
        };
        let desired: Vec<Value> = prepared.iter().map(|p| p.object.clone()).collect();
        if matches!(st.phase, StagePhase::Pending | StagePhase::Applying) {
            if st.started_at.is_none() {
                st.started_at = Some(now_text(now));
            }
            // Nothing is applied when anything is out of bounds (scopes as the CRDs of this
            // and earlier stages declare them).
            if let Some(b) = bounds {
                for p in &prepared {
                    if let Some(why) = b.check_object(p) {
                        return fail_with(st, "ProjectViolation", why);
                    }
                }
            }
            let crds: BTreeSet<(String, String)> = desired
                .iter()
                .filter(|o| o["kind"] == "CustomResourceDefinition")
                .filter_map(|o| {
                    Some((
                        o["spec"]["group"].as_str()?.to_owned(),
                        o["spec"]["names"]["kind"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            for object in &desired {
                let group = object["apiVersion"]
                    .as_str()
                    .and_then(|a| a.rsplit_once('/'))
                    .map(|(g, _)| g.to_owned())
                    .unwrap_or_default();
                let kind = object["kind"].as_str().unwrap_or_default().to_owned();
                if crds.contains(&(group, kind)) {
                    // Custom resources wait for their CRD to be Established.
                    for crd in desired
                        .iter()
                        .filter(|o| o["kind"] == "CustomResourceDefinition")
                    {
                        let live = self
                            .cluster
                            .get(&user, &ObjectKey::of(crd))
                            .ok()
                            .flatten()
                            .unwrap_or(Value::Null);
                        if !sluice_stage::health::builtin(&live).is_current() {
                            st.phase = StagePhase::Applying;
                            st.message = format!(
                                "waiting for CRD {} to be Established",
                                crd["metadata"]["name"].as_str().unwrap_or_default()
                            );
                            return (st, Step::Wait(POLL));
                        }
                    }
                }
                match self.apply_with_policy(&user, object, stage.conflict_policy.as_ref()) {
                    Ok(true) => {
                        self.metrics.applied.inc();
                    }
                    Ok(false) => {}
                    Err(e) => return fail_with(st, "ApplyFailed", e),
                }
            }
            // Prune what left the stage, then record the new inventory.
            let keys: Vec<ObjectKey> = desired.iter().map(ObjectKey::of).collect();
            let owner = format!(
                "{}.{}",
                stageset.metadata.namespace.as_deref().unwrap_or("default"),
                stageset.metadata.name.as_deref().unwrap_or_default()
            );
            let old = self.read_inventory(&st.inventory_refs);
            if stage.prune {
                let keep: BTreeSet<&ObjectKey> = keys.iter().collect();
                for gone in old.iter().filter(|k| !keep.contains(k)) {
                    if let Err(e) = self.cluster.delete(&user, gone) {
                        return fail_with(st, "ApplyFailed", format!("pruning {gone}: {e}"));
                    }
                    self.metrics.pruned.inc();
                }
            }
            match self.write_inventory(&owner, &stage.name, &keys, &st.inventory_refs) {
                Ok(refs) => st.inventory_refs = refs,
                Err(e) => return fail_with(st, "ApplyFailed", format!("inventory: {e}")),
            }
            st.objects = u32::try_from(keys.len()).unwrap_or(u32::MAX);
            st.phase = StagePhase::Waiting;
            st.message = "applied; waiting for readiness".into();
        }
        // Readiness.
        let checks = stage.ready_checks.clone().unwrap_or_default();
        if checks.disable_wait {
            st.phase = StagePhase::Ready;
            st.finished_at = Some(now_text(now));
            st.message = "applied (readiness not awaited)".into();
            return (st, Step::Continue);
        }
        let cel: Vec<CelCheck> = match checks.exprs.iter().map(CelCheck::compile).collect() {
            Ok(c) => c,
            Err(e) => return fail_with(st, "HealthCheckFailed", e),
        };
        let targets: Vec<ObjectKey> = if checks.checks.is_empty() {
            desired.iter().map(ObjectKey::of).collect()
        } else {
            checks
                .checks
                .iter()
                .map(|c| ObjectKey {
                    api_version: c.api_version.clone(),
                    kind: c.kind.clone(),
                    namespace: c.namespace.clone(),
                    name: c.name.clone(),
                })
                .collect()
        };
        let mut waiting = Vec::new();
        for key in &targets {
            let live = match self.cluster.get(&user, key) {
                Ok(Some(l)) => l,
                Ok(None) => {
                    waiting.push(format!("{key} does not exist yet"));
                    continue;
                }
                Err(e) => return fail_with(st, "HealthCheckFailed", format!("reading {key}: {e}")),
            };
            match health(&live, &cel) {
                Health::Current => {}
                Health::InProgress(m) => waiting.push(format!("{key}: {m}")),
                Health::Failed(m) => {
                    return fail_with(st, "HealthCheckFailed", format!("{key}: {m}"));
                }
            }
        }
        if waiting.is_empty() {
            st.phase = StagePhase::Ready;
            st.finished_at = Some(now_text(now));
            if let Some(started) = parse_time(st.started_at.as_deref()) {
                let seconds = (now - started).num_milliseconds() as f64 / 1000.0;
                self.metrics.stage_seconds.observe(seconds.max(0.0));
            }
            st.message = format!("{} objects ready", st.objects);
            return (st, Step::Continue);
        }
        let timeout = duration(
            stage.timeout.as_deref().unwrap_or(&stageset.spec.timeout),
            Duration::from_secs(300),
        );
        let started = parse_time(st.started_at.as_deref()).unwrap_or(now);
        if now >= started + chrono::Duration::from_std(timeout).unwrap_or_default() {
            return fail_with(
                st,
                "HealthCheckFailed",
                format!(
                    "not ready after {}s: {}",
                    timeout.as_secs(),
                    waiting.join("; ")
                ),
            );
        }
        st.phase = StagePhase::Waiting;
        st.message = waiting.join("; ");
        (st, Step::Wait(POLL))
    }

    fn inventory_key(&self, name: &str) -> ObjectKey {
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some(self.controller_namespace.clone()),
            name: name.into(),
        }
    }

    fn read_inventory(&self, refs: &[String]) -> Vec<ObjectKey> {
        let shards: Vec<Value> = refs
            .iter()
            .filter_map(|r| {
                self.cluster
                    .get(&self.controller_user, &self.inventory_key(r))
                    .ok()
                    .flatten()
            })
            .collect();
        inventory::read(&shards)
    }

    fn write_inventory(
        &self,
        owner: &str,
        stage: &str,
        keys: &[ObjectKey],
        old_refs: &[String],
    ) -> Result<Vec<String>, ClusterError> {
        let shards = inventory::shards(&self.controller_namespace, owner, stage, keys);
        let mut refs = Vec::new();
        for shard in &shards {
            let key = ObjectKey::of(shard);
            let unchanged = self
                .cluster
                .get(&self.controller_user, &key)?
                .is_some_and(|live| contained(shard, &live));
            if !unchanged {
                self.cluster.apply(&self.controller_user, shard)?;
            }
            refs.push(key.name);
        }
        for stale in old_refs.iter().filter(|r| !refs.contains(r)) {
            self.cluster
                .delete(&self.controller_user, &self.inventory_key(stale))?;
        }
        Ok(refs)
    }

    /// Re-applies objects that drifted from what was applied; no write when none did. Live
    /// objects are read with one list per kind and namespace (by the stage labels sluice
    /// sets), not one request per object.
    fn correct_drift(&self, stageset: &StageSet) -> Result<usize, String> {
        let mut drifted = 0;
        let owner = owner_label(
            stageset.metadata.namespace.as_deref().unwrap_or("default"),
            stageset.metadata.name.as_deref().unwrap_or_default(),
        );
        for index in 0..stageset.spec.stages.len() {
            let user = Self::user(stageset, index);
            let stage = &stageset.spec.stages[index].name;
            let desired: Vec<Value> = self
                .desired(stageset, index)?
                .into_iter()
                .map(|p| p.object)
                .collect();
            let mut groups: BTreeMap<(String, String, Option<String>), Vec<&Value>> =
                BTreeMap::new();
            for object in &desired {
                let key = ObjectKey::of(object);
                groups
                    .entry((key.api_version, key.kind, key.namespace))
                    .or_default()
                    .push(object);
            }
            for ((api_version, kind, namespace), objects) in groups {
                let live: HashMap<String, Value> = self
                    .cluster
                    .list(
                        &user,
                        &api_version,
                        &kind,
                        namespace.as_deref(),
                        &[("sluice.dev/stageset", &owner), ("sluice.dev/stage", stage)],
                    )
                    .map_err(|e| format!("listing {kind}: {e}"))?
                    .into_iter()
                    .filter_map(|o| Some((o["metadata"]["name"].as_str()?.to_owned(), o)))
                    .collect();
                for object in objects {
                    let name = object["metadata"]["name"].as_str().unwrap_or_default();
                    if !live.get(name).is_some_and(|l| contained(object, l)) {
                        let key = ObjectKey::of(object);
                        let policy = stageset.spec.stages[index].conflict_policy.as_ref();
                        if !self.apply_with_policy(&user, object, policy)? {
                            continue;
                        }
                        tracing::info!(object = %key, "drift corrected");
                        drifted += 1;
                        self.metrics.drifted.inc();
                    }
                }
            }
        }
        Ok(drifted)
    }

    /// Server-side apply without force; a field-ownership conflict is settled by the stage's
    /// `conflictPolicy`. Returns whether the object was applied (false: kept as it is).
    fn apply_with_policy(
        &self,
        user: &str,
        object: &Value,
        policy: Option<&ConflictPolicy>,
    ) -> Result<bool, String> {
        let key = ObjectKey::of(object);
        match self.cluster.apply_with(user, object, false) {
            Ok(_) => Ok(true),
            Err(ClusterError::Conflict(conflict)) => match conflict_action(policy, &key) {
                ConflictAction::Fail => Err(format!(
                    "applying {key}: {conflict} (conflictPolicy Fail: set Recreate or KeepExisting for {key} to resolve it)"
                )),
                ConflictAction::KeepExisting => {
                    tracing::info!(object = %key, "conflict: keeping the existing object");
                    Ok(false)
                }
                ConflictAction::Recreate => {
                    tracing::info!(object = %key, "conflict: recreating");
                    self.cluster
                        .delete(user, &key)
                        .and_then(|()| self.cluster.apply_with(user, object, false))
                        .map(|_| true)
                        .map_err(|e| format!("recreating {key}: {e}"))
                }
            },
            Err(e) => Err(format!("applying {key}: {e}")),
        }
    }

    /// Deletion: stages torn down in reverse order, as their own identities; `prune: false`
    /// objects are left in place. The finalizer goes last.
    fn teardown(&self, stageset: &mut StageSet, now: DateTime<Utc>, retry: Duration) -> Duration {
        let generation = stageset.metadata.generation.unwrap_or(1);
        let snapshot = stageset.clone();
        let status = stageset.status.get_or_insert_with(Default::default);
        for index in (0..snapshot.spec.stages.len()).rev() {
            let stage = &snapshot.spec.stages[index];
            let Some(st) = status.stages.iter_mut().find(|s| s.name == stage.name) else {
                continue;
            };
            let user = Self::user(&snapshot, index);
            let keys = self.read_inventory(&st.inventory_refs);
            if stage.prune {
                for key in keys.iter().rev() {
                    if let Err(e) = self.cluster.delete(&user, key) {
                        let message = format!("tearing down stage {}: {key}: {e}", stage.name);
                        set_condition(
                            status,
                            "Ready",
                            "False",
                            "ApplyFailed",
                            &message,
                            now,
                            generation,
                        );
                        return retry;
                    }
                }
            }
            for r in std::mem::take(&mut st.inventory_refs) {
                let _ = self
                    .cluster
                    .delete(&self.controller_user, &self.inventory_key(&r));
            }
        }
        if let Some(f) = stageset.metadata.finalizers.as_mut() {
            f.retain(|x| x != FINALIZER);
        }
        let prefix = format!(
            "{}/{}/",
            snapshot.metadata.namespace.as_deref().unwrap_or("default"),
            snapshot.metadata.name.as_deref().unwrap_or_default()
        );
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|slot, _| !slot.starts_with(&prefix));
        Duration::ZERO
    }
}

/// The `sluice.dev/stageset` label value: `namespace.name`, or a digest of it when that would
/// exceed the 63 characters a label value may have.
pub fn owner_label(namespace: &str, name: &str) -> String {
    let full = format!("{namespace}.{name}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across releases and platforms, unlike the std hasher.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{hash:016x}", &full[..40].trim_end_matches(['.', '-']))
}

/// The conflict action for an object: the first rule whose target matches, else the default.
fn conflict_action(policy: Option<&ConflictPolicy>, key: &ObjectKey) -> ConflictAction {
    let Some(policy) = policy else {
        return ConflictAction::Fail;
    };
    policy
        .rules
        .iter()
        .find(|r| {
            let t = &r.target;
            t.kind.as_ref().is_none_or(|k| *k == key.kind)
                && t.name.as_ref().is_none_or(|n| *n == key.name)
                && t.namespace
                    .as_ref()
                    .is_none_or(|ns| Some(ns) == key.namespace.as_ref())
        })
        .map_or(policy.default, |r| r.action)
}

fn fail(
    status: &mut StageSetStatus,
    now: DateTime<Utc>,
    generation: i64,
    reason: &str,
    message: &str,
) {
    set_condition(status, "Ready", "False", reason, message, now, generation);
    set_condition(status, "Stalled", "True", reason, message, now, generation);
    remove_condition(status, "Reconciling");
}
