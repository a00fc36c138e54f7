//! The reconciler end to end, with real Git repositories and the real renderer, against two
//! clusters: the in-memory double, and the in-process test API server spoken to over HTTP by
//! the real `kube` client (`KubeCluster`). Every scenario runs on both. The test plays the
//! kubelet and the Deployment controller by writing status.

use std::path::PathBuf;

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{Value, json};
use sluice_api::{StagePhase, StageSet};
use sluice_controller::cluster::{Cluster, ObjectKey};
use sluice_controller::kube_cluster::KubeCluster;
use sluice_controller::memory::MemoryCluster;
use sluice_controller::reconcile::{FINALIZER, Reconciler};
use sluice_stage::plan::PlanOptions;
use sluice_testapi::TestApi;
use sluice_testkit::commit_all;

const CONTROLLER: &str = "system:serviceaccount:sluice-system:sluice-controller";
const TENANT: &str = "system:serviceaccount:shop:deployer";

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: 'example/{name}:1'}}]}}\n"
    )
}

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: '{value}'}}\n"
    )
}

/// What a scenario needs from a cluster besides the reconciler's own calls.
trait Backend: Sized {
    type C: Cluster;
    fn start() -> Self;
    fn cluster(&self) -> &Self::C;
    fn controller_user(&self) -> &'static str;
    fn allow(&self, user: &str, verbs: &[&str], kind: &str, namespace: Option<&str>);
    fn peek(&self, key: &ObjectKey) -> Option<Value>;
    fn set_status(&self, key: &ObjectKey, status: Value);
    /// Write requests as `apply Kind ns/name` / `delete Kind ns/name`.
    fn writes(&self) -> Vec<String>;
    fn keys(&self) -> Vec<ObjectKey>;
    fn apply(
        &self,
        user: &str,
        object: &Value,
    ) -> Result<Value, sluice_controller::cluster::ClusterError> {
        self.cluster().apply(user, object)
    }
}

impl Backend for MemoryCluster {
    type C = MemoryCluster;
    fn start() -> Self {
        MemoryCluster::default()
    }
    fn cluster(&self) -> &MemoryCluster {
        self
    }
    fn controller_user(&self) -> &'static str {
        CONTROLLER
    }
    fn allow(&self, user: &str, verbs: &[&str], kind: &str, namespace: Option<&str>) {
        MemoryCluster::allow(self, user, verbs, kind, namespace);
    }
    fn peek(&self, key: &ObjectKey) -> Option<Value> {
        MemoryCluster::peek(self, key)
    }
    fn set_status(&self, key: &ObjectKey, status: Value) {
        MemoryCluster::set_status(self, key, status);
    }
    fn writes(&self) -> Vec<String> {
        MemoryCluster::writes(self)
    }
    fn keys(&self) -> Vec<ObjectKey> {
        MemoryCluster::keys(self)
    }
}

/// The test API server and a `kube`-backed cluster talking to it. The controller acts as the
/// server's administrator (no impersonation), tenants are impersonated.
struct KubeApi {
    api: TestApi,
    cluster: KubeCluster,
    _runtime: tokio::runtime::Runtime,
}

const KINDS: [(&str, &str); 7] = [
    ("ConfigMap", "configmaps"),
    ("Deployment", "deployments"),
    ("StageSet", "stagesets"),
    ("Project", "projects"),
    ("CustomResourceDefinition", "customresourcedefinitions"),
    ("Widget", "widgets"),
    ("*", "*"),
];

impl Backend for KubeApi {
    type C = KubeCluster;
    fn start() -> Self {
        let api = TestApi::start().expect("test api");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let config = kube::Config::new(api.url.parse().expect("url"));
        let cluster = KubeCluster::new(config, runtime.handle().clone());
        Self {
            api,
            cluster,
            _runtime: runtime,
        }
    }
    fn cluster(&self) -> &KubeCluster {
        &self.cluster
    }
    fn controller_user(&self) -> &'static str {
        ""
    }
    fn allow(&self, user: &str, verbs: &[&str], kind: &str, namespace: Option<&str>) {
        let plural = KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or("?", |(_, p)| p);
        self.api.allow(user, verbs, plural, namespace);
    }
    fn peek(&self, key: &ObjectKey) -> Option<Value> {
        self.api.peek(
            &key.api_version,
            &key.kind,
            key.namespace.as_deref(),
            &key.name,
        )
    }
    fn set_status(&self, key: &ObjectKey, status: Value) {
        self.api.set_status(
            &key.api_version,
            &key.kind,
            key.namespace.as_deref(),
            &key.name,
            status,
        );
    }
    fn writes(&self) -> Vec<String> {
        self.api
            .writes()
            .iter()
            .map(|w| {
                let (method, path) = w.split_once(' ').unwrap_or(("", w));
                let parts: Vec<&str> = path
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .trim_matches('/')
                    .split('/')
                    .collect();
                let (ns, plural, name) = match parts.iter().position(|p| *p == "namespaces") {
                    Some(i) if parts.len() > i + 3 => {
                        (Some(parts[i + 1]), parts[i + 2], parts[i + 3])
                    }
                    _ => (None, parts[parts.len() - 2], parts[parts.len() - 1]),
                };
                let kind = KINDS
                    .iter()
                    .find(|(_, p)| *p == plural)
                    .map_or(plural, |(k, _)| k);
                let verb = if method == "DELETE" {
                    "delete"
                } else {
                    "apply"
                };
                match ns {
                    Some(ns) => format!("{verb} {kind} {ns}/{name}"),
                    None => format!("{verb} {kind} {name}"),
                }
            })
            .collect()
    }
    fn keys(&self) -> Vec<ObjectKey> {
        ["ConfigMap", "Deployment"]
            .iter()
            .flat_map(|kind| {
                let api_version = if *kind == "Deployment" {
                    "apps/v1"
                } else {
                    "v1"
                };
                self.api
                    .list(api_version, kind, None)
                    .into_iter()
                    .map(move |o| {
                        let mut o = o;
                        o["apiVersion"] = json!(api_version);
                        o["kind"] = json!(kind);
                        ObjectKey::of(&o)
                    })
            })
            .collect()
    }
    fn apply(
        &self,
        user: &str,
        object: &Value,
    ) -> Result<Value, sluice_controller::cluster::ClusterError> {
        // The administrator is the server's own identity.
        let user = if user == "admin" { "" } else { user };
        self.cluster.apply(user, object)
    }
}

macro_rules! on_both_clusters {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $name() { super::$name::<sluice_controller::memory::MemoryCluster>() })*
        }
        mod kube_api {
            $(#[test] fn $name() { super::$name::<super::KubeApi>() })*
        }
    };
}

on_both_clusters!(
    stages_start_only_after_the_previous_one_is_ready,
    a_failing_stage_leaves_later_stages_untouched,
    a_stage_times_out,
    objects_that_leave_a_stage_are_pruned_and_prune_false_keeps_them,
    an_unchanged_stageset_re_renders_and_writes_nothing_but_corrects_drift,
    revisions_are_pinned_for_the_whole_run,
    suspend_and_depends_on,
    a_service_account_without_rights_gets_the_403_in_the_condition,
    a_project_violation_applies_nothing,
    deletion_tears_stages_down_in_reverse_order,
    custom_resources_wait_for_their_crd_to_be_established,
);

struct World<B: Backend> {
    dir: tempfile::TempDir,
    cluster: B,
    clock: std::cell::Cell<DateTime<Utc>>,
}

impl<B: Backend> World<B> {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let w = Self {
            dir,
            cluster: B::start(),
            clock: std::cell::Cell::new(
                DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc),
            ),
        };
        w.write("db/db.yaml", &deployment("db"));
        w.write("api/api.yaml", &deployment("api"));
        w.write(
            "web/web.yaml",
            &format!(
                "{}---\n{}",
                config_map("web", "v1"),
                config_map("extra", "x")
            ),
        );
        commit_all(&w.repo(), "first");
        let controller = w.cluster.controller_user();
        w.cluster.allow(
            controller,
            &["get", "create", "patch", "delete"],
            "ConfigMap",
            Some("sluice-system"),
        );
        w.cluster.allow(controller, &["get"], "StageSet", None);
        w.cluster.allow(controller, &["get"], "Project", None);
        w.cluster.allow(TENANT, &["*"], "*", Some("shop"));
        w
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn write(&self, path: &str, body: &str) {
        let p = self.repo().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    fn reconciler(&self) -> Reconciler<'_, B::C> {
        Reconciler::new(
            self.cluster.cluster(),
            PlanOptions {
                cache_dir: self.dir.path().join("cache"),
                sources_dir: None,
                base_dir: self.dir.path().to_path_buf(),
                tools: Default::default(),
                sandbox: Default::default(),
            },
            "sluice-system",
            self.cluster.controller_user(),
        )
    }

    fn stageset(&self, extra: Value) -> StageSet {
        let url = format!("file://{}", self.repo().display());
        let stage = |name: &str| json!({"name": name, "source": {"git": {"url": url, "ref": "main"}}, "path": name});
        let mut spec = json!({
            "serviceAccountName": "deployer",
            "interval": "10m",
            "retryInterval": "1m",
            "timeout": "5m",
            "stages": [stage("db"), stage("api"), stage("web")],
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
            "metadata": {"name": "webshop", "namespace": "shop", "generation": 1},
            "spec": spec,
        }))
        .expect("stageset")
    }

    fn key(kind: &str, name: &str) -> ObjectKey {
        let api_version = if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        };
        ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    fn exists(&self, kind: &str, name: &str) -> bool {
        self.cluster.peek(&Self::key(kind, name)).is_some()
    }

    fn rolled_out(&self, name: &str) {
        self.cluster.set_status(
            &Self::key("Deployment", name),
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}),
        );
    }

    fn later(&self, seconds: i64) {
        self.clock.set(self.clock.get() + Span::seconds(seconds));
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.get()
    }
}

fn condition(s: &StageSet, kind: &str) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn phases(s: &StageSet) -> Vec<StagePhase> {
    s.status
        .as_ref()
        .map(|st| st.stages.iter().map(|x| x.phase).collect())
        .unwrap_or_default()
}

fn converge<B: Backend>(w: &World<B>, r: &Reconciler<'_, B::C>, s: &mut StageSet) {
    r.reconcile(s, w.now());
    w.rolled_out("db");
    w.later(2);
    r.reconcile(s, w.now());
    w.rolled_out("api");
    w.later(2);
    r.reconcile(s, w.now());
    assert_eq!(
        condition(s, "Ready").map(|c| c.1),
        Some("Succeeded".into()),
        "{:?}",
        s.status
    );
}

fn stages_start_only_after_the_previous_one_is_ready<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    r.reconcile(&mut s, w.now());
    assert!(
        s.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
    );
    assert!(w.exists("Deployment", "db"));
    assert!(
        !w.exists("Deployment", "api"),
        "stage 2 must wait for stage 1"
    );
    assert_eq!(
        phases(&s),
        [
            StagePhase::Waiting,
            StagePhase::Pending,
            StagePhase::Pending
        ]
    );
    assert_eq!(
        condition(&s, "Reconciling").map(|c| c.0),
        Some("True".into())
    );
    let db = w
        .cluster
        .peek(&World::<B>::key("Deployment", "db"))
        .expect("db");
    assert_eq!(db["metadata"]["labels"]["sluice.dev/stage"], "db");

    w.later(2);
    r.reconcile(&mut s, w.now());
    assert!(!w.exists("Deployment", "api"), "db still not ready");

    w.rolled_out("db");
    w.later(2);
    r.reconcile(&mut s, w.now());
    assert!(w.exists("Deployment", "api"));
    assert!(
        !w.exists("ConfigMap", "web"),
        "stage 3 must wait for stage 2"
    );
    assert_eq!(
        phases(&s),
        [StagePhase::Ready, StagePhase::Waiting, StagePhase::Pending]
    );

    w.rolled_out("api");
    w.later(2);
    let next = r.reconcile(&mut s, w.now());
    assert!(w.exists("ConfigMap", "web"));
    assert_eq!(phases(&s), [StagePhase::Ready; 3]);
    assert_eq!(
        condition(&s, "Ready").map(|c| (c.0, c.1)),
        Some(("True".into(), "Succeeded".into()))
    );
    assert_eq!(condition(&s, "Reconciling"), None);
    assert_eq!(next, std::time::Duration::from_secs(600));
    let status = s.status.as_ref().expect("status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.stages[2].objects, 2);
    assert!(
        status
            .revisions
            .values()
            .all(|r| r.starts_with("main@sha1:"))
    );
}

fn a_failing_stage_leaves_later_stages_untouched<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    r.reconcile(&mut s, w.now());
    w.rolled_out("db");
    w.later(2);
    r.reconcile(&mut s, w.now());
    w.cluster.set_status(
        &World::<B>::key("Deployment", "api"),
        json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False",
               "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet api-1 has timed out progressing."}]}),
    );
    w.later(2);
    r.reconcile(&mut s, w.now());
    assert_eq!(
        phases(&s),
        [StagePhase::Ready, StagePhase::Failed, StagePhase::Pending]
    );
    let (status, reason, message) = condition(&s, "Ready").expect("ready");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "HealthCheckFailed")
    );
    assert!(
        message.contains("stage api") && message.contains("timed out"),
        "{message}"
    );
    assert_eq!(condition(&s, "Stalled").map(|c| c.0), Some("True".into()));
    assert!(!w.exists("ConfigMap", "web"));
    // Retried only after retryInterval.
    w.later(10);
    r.reconcile(&mut s, w.now());
    assert!(!w.exists("ConfigMap", "web"));
}

fn a_stage_times_out<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({"timeout": "30s"}));
    r.reconcile(&mut s, w.now());
    w.later(31);
    r.reconcile(&mut s, w.now());
    let (_, reason, message) = condition(&s, "Ready").expect("ready");
    assert_eq!(reason, "HealthCheckFailed");
    assert!(message.contains("not ready after 30s"), "{message}");
}

fn objects_that_leave_a_stage_are_pruned_and_prune_false_keeps_them<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    converge(&w, &r, &mut s);
    assert!(w.exists("ConfigMap", "extra"));
    w.write("web/web.yaml", &config_map("web", "v2"));
    commit_all(&w.repo(), "drop extra");
    w.later(601);
    r.reconcile(&mut s, w.now());
    assert!(!w.exists("ConfigMap", "extra"), "pruned");
    let web = w
        .cluster
        .peek(&World::<B>::key("ConfigMap", "web"))
        .expect("web");
    assert_eq!(web["data"]["value"], "v2");

    // The same with prune off: the object stays.
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    s.spec.stages[2].prune = false;
    converge(&w, &r, &mut s);
    w.write("web/web.yaml", &config_map("web", "v2"));
    commit_all(&w.repo(), "drop extra");
    w.later(601);
    r.reconcile(&mut s, w.now());
    assert!(w.exists("ConfigMap", "extra"), "prune: false keeps it");
}

fn an_unchanged_stageset_re_renders_and_writes_nothing_but_corrects_drift<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    converge(&w, &r, &mut s);
    let writes = w.cluster.writes().len();
    let renders = r.renders();
    for _ in 0..3 {
        w.later(601);
        let before = s.status.clone();
        r.reconcile(&mut s, w.now());
        assert_eq!(
            s.status.as_ref().map(|x| &x.conditions),
            before.as_ref().map(|x| &x.conditions)
        );
    }
    assert_eq!(
        w.cluster.writes().len(),
        writes,
        "no-op resyncs wrote: {:?}",
        &w.cluster.writes()[writes..]
    );
    assert_eq!(r.renders(), renders, "no re-render for unchanged revisions");

    // Someone edits the ConfigMap by hand: the next resync puts it back, with one write.
    w.cluster.allow("admin", &["*"], "*", None);
    w.cluster
        .apply("admin", &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"value": "hacked"}}))
        .expect("hand edit");
    assert_eq!(
        w.cluster
            .peek(&World::<B>::key("ConfigMap", "web"))
            .expect("web")["data"]["value"],
        "hacked"
    );
    let writes = w.cluster.writes().len();
    w.later(601);
    r.reconcile(&mut s, w.now());
    let web = w
        .cluster
        .peek(&World::<B>::key("ConfigMap", "web"))
        .expect("web");
    assert_eq!(web["data"]["value"], "v1");
    assert_eq!(w.cluster.writes().len(), writes + 1);
}

fn revisions_are_pinned_for_the_whole_run<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    r.reconcile(&mut s, w.now());
    let pinned = s.status.as_ref().expect("status").revisions.clone();
    // A commit lands while stage 1 is rolling out.
    w.write("web/web.yaml", &config_map("web", "mid-run"));
    let new_sha = commit_all(&w.repo(), "mid-run");
    w.rolled_out("db");
    w.later(2);
    r.reconcile(&mut s, w.now());
    w.rolled_out("api");
    w.later(2);
    r.reconcile(&mut s, w.now());
    let web = w
        .cluster
        .peek(&World::<B>::key("ConfigMap", "web"))
        .expect("web");
    assert_eq!(
        web["data"]["value"], "v1",
        "this run renders what it pinned"
    );
    assert_eq!(s.status.as_ref().expect("status").revisions, pinned);
    // The next run picks the commit up.
    w.later(601);
    r.reconcile(&mut s, w.now());
    let web = w
        .cluster
        .peek(&World::<B>::key("ConfigMap", "web"))
        .expect("web");
    assert_eq!(web["data"]["value"], "mid-run");
    assert!(s.status.as_ref().expect("status").revisions["web"].ends_with(&new_sha));
}

fn suspend_and_depends_on<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({"suspend": true}));
    r.reconcile(&mut s, w.now());
    assert_eq!(
        condition(&s, "Ready").map(|c| c.1),
        Some("Suspended".into())
    );
    assert!(w.cluster.writes().is_empty(), "{:?}", w.cluster.writes());

    let mut s = w.stageset(json!({"dependsOn": [{"name": "database"}]}));
    r.reconcile(&mut s, w.now());
    let (_, reason, message) = condition(&s, "Ready").expect("ready");
    assert_eq!(reason, "DependencyNotReady");
    assert!(message.contains("shop/database"), "{message}");
    assert!(!w.exists("Deployment", "db"));
    // The dependency becomes Ready at its observed generation.
    let dep = ObjectKey {
        api_version: "sluice.dev/v1alpha1".into(),
        kind: "StageSet".into(),
        namespace: Some("shop".into()),
        name: "database".into(),
    };
    w.cluster.allow("admin", &["*"], "*", None);
    w.cluster
        .apply("admin", &json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet", "metadata": {"name": "database", "namespace": "shop"}, "spec": {}}))
        .expect("apply");
    w.cluster.set_status(
        &dep,
        json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}),
    );
    r.reconcile(&mut s, w.now());
    assert!(w.exists("Deployment", "db"));
}

fn a_service_account_without_rights_gets_the_403_in_the_condition<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({"serviceAccountName": "nobody"}));
    r.reconcile(&mut s, w.now());
    let (status, reason, message) = condition(&s, "Ready").expect("ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ApplyFailed"));
    assert!(
        message.contains("forbidden") && message.contains("system:serviceaccount:shop:nobody"),
        "{message}"
    );
    assert!(!w.exists("Deployment", "db"));
}

fn a_project_violation_applies_nothing<B: Backend>() {
    let w = World::<B>::new();
    w.write("db/db.yaml", &format!("{}---\n{}", deployment("db"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sneaky, namespace: kube-system}\ndata: {}\n"));
    commit_all(&w.repo(), "sneaky");
    w.cluster.allow("admin", &["*"], "*", None);
    w.cluster
        .apply("admin", &json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Project", "metadata": {"name": "shop"},
                                "spec": {"sourceUrls": ["file://**"], "destinationNamespaces": ["shop"]}}))
        .expect("project");
    let r = w.reconciler();
    let mut s = w.stageset(json!({"project": "shop"}));
    r.reconcile(&mut s, w.now());
    let (_, reason, message) = condition(&s, "Ready").expect("ready");
    assert_eq!(reason, "ProjectViolation");
    assert!(
        message.contains("ConfigMap kube-system/sneaky"),
        "{message}"
    );
    assert!(
        !w.exists("Deployment", "db"),
        "nothing of the stage is applied"
    );
}

fn deletion_tears_stages_down_in_reverse_order<B: Backend>() {
    let w = World::<B>::new();
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    s.spec.stages[0].prune = false;
    converge(&w, &r, &mut s);
    let before = w.cluster.writes().len();
    s.metadata.deletion_timestamp = Some(k8s_time());
    r.reconcile(&mut s, w.now());
    let deletes: Vec<String> = w.cluster.writes()[before..]
        .iter()
        .filter(|x| x.starts_with("delete") && !x.contains("sluice-system"))
        .cloned()
        .collect();
    assert_eq!(
        deletes,
        [
            "delete ConfigMap shop/extra",
            "delete ConfigMap shop/web",
            "delete Deployment shop/api"
        ],
        "stage 3, then stage 2; stage 1 has prune: false"
    );
    assert!(w.exists("Deployment", "db"));
    assert!(
        !s.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
    );
    assert!(
        w.cluster
            .keys()
            .iter()
            .all(|k| k.namespace.as_deref() != Some("sluice-system")),
        "inventories removed"
    );
}

fn k8s_time() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    serde_json::from_value(json!("2026-11-22T11:00:00Z")).expect("time")
}

fn custom_resources_wait_for_their_crd_to_be_established<B: Backend>() {
    let w = World::<B>::new();
    w.write(
        "db/db.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 1}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]\n",
    );
    commit_all(&w.repo(), "crd");
    w.cluster.allow(
        TENANT,
        &["get", "create", "patch", "delete"],
        "CustomResourceDefinition",
        None,
    );
    let r = w.reconciler();
    let mut s = w.stageset(json!({}));
    r.reconcile(&mut s, w.now());
    let crd = ObjectKey {
        api_version: "apiextensions.k8s.io/v1".into(),
        kind: "CustomResourceDefinition".into(),
        namespace: None,
        name: "widgets.example.com".into(),
    };
    let widget = ObjectKey {
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        namespace: Some("shop".into()),
        name: "w1".into(),
    };
    assert!(w.cluster.peek(&crd).is_some(), "the CRD goes first");
    assert!(
        w.cluster.peek(&widget).is_none(),
        "the Widget waits for Established"
    );
    assert_eq!(phases(&s)[0], StagePhase::Applying);
    w.cluster.set_status(
        &crd,
        json!({"conditions": [{"type": "Established", "status": "True"}]}),
    );
    w.later(2);
    r.reconcile(&mut s, w.now());
    assert!(w.cluster.peek(&widget).is_some());
    assert_eq!(phases(&s)[0], StagePhase::Ready);
}
