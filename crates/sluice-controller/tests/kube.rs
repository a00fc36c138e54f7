//! The reconciler through the real `kube` client over HTTP, against the in-process test API
//! server (`sluice-testapi`): discovery, server-side apply, impersonation and RBAC are the
//! server's, not a Rust double's.

use std::path::PathBuf;

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{Value, json};
use sluice_api::{StagePhase, StageSet};
use sluice_controller::kube_cluster::KubeCluster;
use sluice_controller::reconcile::Reconciler;
use sluice_stage::plan::PlanOptions;
use sluice_testapi::TestApi;
use sluice_testkit::commit_all;

const TENANT: &str = "system:serviceaccount:shop:deployer";

struct World {
    dir: tempfile::TempDir,
    api: TestApi,
    runtime: tokio::runtime::Runtime,
    clock: std::cell::Cell<DateTime<Utc>>,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let api = TestApi::start().expect("test api");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let w = Self {
            dir,
            api,
            runtime,
            clock: std::cell::Cell::new(
                DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                    .expect("time")
                    .with_timezone(&Utc),
            ),
        };
        let deployment = |name: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: 'example/{name}:1'}}]}}\n"
            )
        };
        w.write("db/db.yaml", &deployment("db"));
        w.write("api/api.yaml", &deployment("api"));
        w.write(
            "web/web.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {value: v1}\n",
        );
        commit_all(&w.repo(), "first");
        w.api.allow(TENANT, &["*"], "*", Some("shop"));
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

    fn cluster(&self) -> KubeCluster {
        let config = kube::Config::new(self.api.url.parse().expect("url"));
        KubeCluster::new(config, self.runtime.handle().clone())
    }

    fn stageset(&self, sa: &str) -> StageSet {
        let url = format!("file://{}", self.repo().display());
        let stage = |name: &str| json!({"name": name, "source": {"git": {"url": url, "ref": "main"}}, "path": name});
        serde_json::from_value(json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
            "metadata": {"name": "webshop", "namespace": "shop", "generation": 1},
            "spec": {"serviceAccountName": sa, "interval": "10m", "retryInterval": "1m",
                     "stages": [stage("db"), stage("api"), stage("web")]},
        }))
        .expect("stageset")
    }

    fn options(&self) -> PlanOptions {
        PlanOptions {
            cache_dir: self.dir.path().join("cache"),
            sources_dir: None,
            base_dir: self.dir.path().to_path_buf(),
            tools: Default::default(),
            sandbox: Default::default(),
        }
    }

    fn deployment(&self, name: &str) -> Option<Value> {
        self.api.peek("apps/v1", "Deployment", Some("shop"), name)
    }

    fn rolled_out(&self, name: &str) {
        self.api.set_status(
            "apps/v1",
            "Deployment",
            Some("shop"),
            name,
            json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}),
        );
    }

    fn later(&self, seconds: i64) -> DateTime<Utc> {
        self.clock.set(self.clock.get() + Span::seconds(seconds));
        self.clock.get()
    }
}

fn ready(s: &StageSet) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[test]
fn stages_roll_out_in_order_through_the_kube_client() {
    let w = World::new();
    let cluster = w.cluster();
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut s = w.stageset("deployer");
    r.reconcile(&mut s, w.later(0));
    let db = w.deployment("db").expect("db applied");
    assert_eq!(
        db["metadata"]["managedFields"][0]["manager"], "sluice",
        "server-side apply as sluice"
    );
    assert!(w.deployment("api").is_none(), "stage 2 waits for stage 1");
    w.rolled_out("db");
    r.reconcile(&mut s, w.later(2));
    assert!(w.deployment("api").is_some());
    assert!(w.api.peek("v1", "ConfigMap", Some("shop"), "web").is_none());
    w.rolled_out("api");
    r.reconcile(&mut s, w.later(2));
    assert!(w.api.peek("v1", "ConfigMap", Some("shop"), "web").is_some());
    assert_eq!(
        ready(&s).map(|c| c.1),
        Some("Succeeded".into()),
        "{:?}",
        s.status
    );
    let phases: Vec<StagePhase> = s
        .status
        .as_ref()
        .expect("status")
        .stages
        .iter()
        .map(|x| x.phase)
        .collect();
    assert_eq!(phases, [StagePhase::Ready; 3]);
    // Inventories went to the controller's namespace as the controller itself.
    assert!(
        w.api
            .peek(
                "v1",
                "ConfigMap",
                Some("sluice-system"),
                "sluice-inv-shop.webshop.db-0"
            )
            .is_some()
    );

    // A no-op resync sends no write to the API server.
    let writes = w.api.writes().len();
    r.reconcile(&mut s, w.later(601));
    assert_eq!(w.api.writes()[writes..], [] as [String; 0]);
}

#[test]
fn a_forbidden_service_account_surfaces_the_servers_403() {
    let w = World::new();
    let cluster = w.cluster();
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut s = w.stageset("intruder");
    r.reconcile(&mut s, w.later(0));
    let (status, reason, message) = ready(&s).expect("ready");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "ApplyFailed"));
    assert!(
        message.contains("deployments \"db\" is forbidden")
            && message.contains("User \"system:serviceaccount:shop:intruder\" cannot create"),
        "{message}"
    );
    assert!(w.deployment("db").is_none());
}

#[test]
fn the_control_loop_converges_from_a_watch_and_tears_down_on_delete() {
    use kube::api::{Api, DeleteParams, Patch, PatchParams};
    use sluice_controller::run::{RunOptions, run};

    let w = World::new();
    let config = kube::Config::new(w.api.url.parse().expect("url"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics = std::sync::Arc::new(sluice_controller::metrics::Metrics::default());
    let options = RunOptions {
        renderer: None,
        plan: w.options(),
        namespace: "sluice-system".into(),
        metrics: metrics.clone(),
    };
    let controller = w.runtime.spawn(run(config.clone(), options, async {
        let _ = stopped.await;
    }));
    let _guard = w.runtime.enter();
    let client = kube::Client::try_from(config).expect("client");
    let stagesets: Api<StageSet> = Api::namespaced(client, "shop");
    let stageset = w.stageset("deployer");
    w.runtime
        .block_on(stagesets.patch(
            "webshop",
            &PatchParams::apply("test"),
            &Patch::Apply(&stageset),
        ))
        .expect("create StageSet");

    let ready = || {
        w.api
            .peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "webshop")
            .and_then(|s| {
                s["status"]["conditions"].as_array().map(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "no convergence: {:?}",
            w.api
                .peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "webshop")
        );
        // Play the Deployment controller for whatever the loop has applied.
        for name in ["db", "api"] {
            if w.deployment(name).is_some_and(|d| d["status"].is_null()) {
                w.rolled_out(name);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let live = w
        .api
        .peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "webshop")
        .expect("stageset");
    assert_eq!(
        live["metadata"]["finalizers"],
        json!(["sluice.dev/teardown"])
    );
    assert_eq!(live["status"]["observedGeneration"], 1);
    assert!(w.api.peek("v1", "ConfigMap", Some("shop"), "web").is_some());
    // Every transition left an Event on the StageSet.
    let reasons: Vec<String> = w
        .api
        .list("events.k8s.io/v1", "Event", Some("shop"))
        .iter()
        .filter(|e| e["regarding"]["name"] == "webshop")
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    for expected in ["StageWaiting", "StageReady", "Succeeded"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "no {expected} event in {reasons:?}"
        );
    }
    let exposition = metrics.render();
    // Three objects; a step that ran on a stale cached copy may have re-applied some.
    let applied: u64 = exposition
        .lines()
        .find_map(|l| l.strip_prefix("sluice_objects_applied_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(applied >= 3, "{exposition}");
    assert!(
        exposition.contains("sluice_work_queue_depth "),
        "{exposition}"
    );
    assert!(
        exposition.contains("sluice_stage_duration_seconds_count "),
        "{exposition}"
    );
    assert!(
        exposition.contains("sluice_stage_ready{stageset=\"shop/webshop\",stage=\"web\"} 1"),
        "{exposition}"
    );
    assert!(
        exposition.contains("sluice_reconciles_total{result=\"success\"}"),
        "{exposition}"
    );

    // Deleting it tears the stages down, then the finalizer goes and the object with it.
    w.runtime
        .block_on(stagesets.delete("webshop", &DeleteParams::default()))
        .expect("delete");
    while w
        .api
        .peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "webshop")
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "teardown did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(w.deployment("db").is_none() && w.deployment("api").is_none());
    assert!(w.api.peek("v1", "ConfigMap", Some("shop"), "web").is_none());
    let _ = stop.send(());
    w.runtime
        .block_on(controller)
        .expect("join")
        .expect("controller");
}

#[test]
fn field_ownership_conflicts_follow_the_conflict_policy() {
    let w = World::new();
    let cluster = w.cluster();
    let hand_edit = || {
        let _guard = w.runtime.enter();
        let client = kube::Client::try_from(kube::Config::new(w.api.url.parse().expect("url")))
            .expect("client");
        let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
            client,
            "shop",
            &kube::core::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        );
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web", "namespace": "shop"}, "data": {"value": "by-hand"}});
        w.runtime
            .block_on(api.patch(
                "web",
                &kube::api::PatchParams::apply("kubectl"),
                &kube::api::Patch::Apply(&object),
            ))
            .expect("hand edit");
    };
    let single = |policy: Value| {
        let mut s = w.stageset("deployer");
        s.spec.stages.retain(|st| st.name == "web");
        s.spec.stages[0].conflict_policy = serde_json::from_value(policy).expect("policy");
        s
    };
    let value = || {
        w.api
            .peek("v1", "ConfigMap", Some("shop"), "web")
            .expect("web")["data"]["value"]
            .clone()
    };

    // Default: Fail, naming the other manager.
    hand_edit();
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut s = single(json!(null));
    r.reconcile(&mut s, w.later(0));
    let (_, reason, message) = ready(&s).expect("ready");
    assert_eq!(reason, "ApplyFailed");
    assert!(
        message.contains("conflict with \"kubectl\"") && message.contains("conflictPolicy Fail"),
        "{message}"
    );
    assert_eq!(value(), "by-hand");

    // KeepExisting for that object: the stage goes on and leaves it alone.
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut s = single(
        json!({"default": "Fail", "rules": [{"target": {"kind": "ConfigMap", "name": "web"}, "action": "KeepExisting"}]}),
    );
    r.reconcile(&mut s, w.later(0));
    assert_eq!(
        ready(&s).map(|c| c.1),
        Some("Succeeded".into()),
        "{:?}",
        s.status
    );
    assert_eq!(value(), "by-hand");

    // Recreate: deleted and applied again, now owned by sluice alone.
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut s = single(json!({"default": "Recreate"}));
    r.reconcile(&mut s, w.later(0));
    assert_eq!(
        ready(&s).map(|c| c.1),
        Some("Succeeded".into()),
        "{:?}",
        s.status
    );
    assert_eq!(value(), "v1");
    let managers = w
        .api
        .peek("v1", "ConfigMap", Some("shop"), "web")
        .expect("web")["metadata"]["managedFields"]
        .clone();
    assert_eq!(managers.as_array().map(Vec::len), Some(1), "{managers}");
}

/// Serves `body` for every GET on a loopback port (a stand-in for Flux's source-controller).
fn artifact_server(body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{address}")
}

fn tarball(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, content.as_bytes())
            .expect("append");
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .expect("tarball")
}

#[test]
fn a_source_ref_reads_the_flux_objects_artifact_from_the_cluster() {
    use sha2::Digest;
    let w = World::new();
    let body = tarball(&[(
        "deploy/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-flux}\ndata: {origin: artifact}\n",
    )]);
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
    let base = artifact_server(body);
    let cluster = w.cluster();
    use sluice_controller::cluster::Cluster;
    cluster
        .apply(
            "",
            &json!({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "app", "namespace": "flux-system"},
                    "spec": {"url": "https://git.example.com/shop/app.git", "interval": "1m"}}),
        )
        .expect("flux object");
    w.api.set_status(
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
        Some("flux-system"),
        "app",
        json!({"artifact": {"url": format!("{base}/app.tar.gz"), "digest": digest,
                            "revision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}}),
    );
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut s: StageSet = serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
        "metadata": {"name": "app", "namespace": "shop", "generation": 1},
        "spec": {"serviceAccountName": "deployer", "stages": [
            {"name": "app", "sourceRef": {"kind": "GitRepository", "name": "app", "namespace": "flux-system"}, "path": "deploy"}]},
    }))
    .expect("stageset");
    r.reconcile(&mut s, w.later(0));
    assert_eq!(
        ready(&s).map(|c| c.1),
        Some("Succeeded".into()),
        "{:?}",
        s.status
    );
    let cm = w
        .api
        .peek("v1", "ConfigMap", Some("shop"), "from-flux")
        .expect("applied");
    assert_eq!(cm["data"]["origin"], "artifact");
    let revision = &s.status.as_ref().expect("status").revisions["app"];
    assert!(revision.contains("0123456789abcdef"), "{revision}");

    // A source object without an artifact is SourceNotReady, naming it.
    w.api.set_status(
        "source.toolkit.fluxcd.io/v1",
        "GitRepository",
        Some("flux-system"),
        "app",
        json!({}),
    );
    let r = Reconciler::new(&cluster, w.options(), "sluice-system", "");
    let mut fresh = s.clone();
    fresh.status = None;
    r.reconcile(&mut fresh, w.later(0));
    let (_, reason, message) = ready(&fresh).expect("ready");
    assert_eq!(reason, "SourceNotReady");
    assert!(
        message.contains("GitRepository app has no status.artifact"),
        "{message}"
    );
}
