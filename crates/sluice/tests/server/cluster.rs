//! Cluster mode against `sluice-testapi`, an in-process Kubernetes API server the real `kube`
//! client talks to over HTTP (docs/testing.md lists what it does not model).

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use sluice_testapi::TestApi;

use crate::harness::{Api, PLANTED, fixture, pki};

fn kubeconfig(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: '{url}'}}}}]\nusers: [{{name: t, user: {{}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: t}}}}]\ncurrent-context: t\n"
        ),
    )
    .expect("kubeconfig");
    path
}

/// Server-side applies `object` to the test API server.
fn apply(api: &TestApi, object: &Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let plural = match object["kind"].as_str().expect("kind") {
        "StageSet" => "stagesets",
        "Project" => "projects",
        "GitRepository" => "gitrepositories",
        "Secret" => "secrets",
        other => panic!("no plural for {other}"),
    };
    let prefix = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let name = object["metadata"]["name"].as_str().expect("name");
    let path = match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{prefix}/{plural}/{name}"),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .patch(format!("{}{path}?fieldManager=test&force=true", api.url))
        .header("Content-Type", "application/apply-patch+yaml")
        .send(object.to_string().as_bytes())
        .expect("apply");
    assert_eq!(response.status().as_u16(), 200, "apply {path}");
}

/// Loads the fixture's YAML documents of `file` and applies them.
fn apply_file(api: &TestApi, file: &Path) {
    let text = std::fs::read_to_string(file).expect("read");
    for doc in text.split("\n---") {
        let value: Value = serde_yaml_ng_like(doc);
        if value.is_object() {
            apply(api, &value);
        }
    }
}

/// The fixture is flow-style YAML simple enough for `sluice`'s own loader.
fn serde_yaml_ng_like(doc: &str) -> Value {
    sluice_manifest::parse_documents(doc, &Default::default())
        .expect("yaml")
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn initial_password(api: &TestApi) -> Option<String> {
    let secret = api.peek(
        "v1",
        "Secret",
        Some("sluice-system"),
        "sluice-initial-admin-password",
    )?;
    let b64 = secret["data"]["password"].as_str()?;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).ok()?).ok()
}

#[test]
fn cluster_mode_reads_and_writes_through_the_kubernetes_api() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let kube = TestApi::start().expect("test API server");
    apply_file(&kube, &dir.join("projects.yaml"));
    apply_file(&kube, &dir.join("stagesets.yaml"));
    apply_file(&kube, &dir.join("sources/app.yaml"));
    apply(
        &kube,
        &json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque",
        "data": {"token": crate::harness::LIVE_B64}}),
    );
    let config = kubeconfig(tmp.path(), &kube.url);
    let pki = pki(tmp.path(), "api");
    let sources = dir.join("sources");
    let cache = tmp.path().join("cache");
    let extra = [
        "--sources",
        sources.to_str().expect("utf-8"),
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ];

    let api = Api::start_cluster(&config, &pki, &extra);
    let password = initial_password(&kube).expect("initial admin password Secret");
    let state = kube
        .peek("v1", "Secret", Some("sluice-system"), "sluice-server-state")
        .expect("state Secret");
    assert!(
        !state.to_string().contains(&password),
        "plain password in the state Secret"
    );
    let admin = api.login("admin", &password);

    // Ready only once StageSets and Projects were listed in full.
    wait_until("/readyz", || {
        api.send("GET", "/readyz", None, &[], b"").status == 200
    });
    assert_eq!(
        api.get("/api/v1/stagesets", &admin).body["items"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(api.get("/api/v1/projects/shop", &admin).status, 200);

    // Reconcile: an annotation through the API and a Kubernetes Event naming the actor.
    let r = api.post(
        "/api/v1/stagesets/shop/web/reconcile",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let stageset = kube
        .peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "web")
        .expect("stageset");
    assert!(
        stageset["metadata"]["annotations"]["sluice.dev/reconcile-requested-at"].is_string(),
        "{stageset}"
    );
    assert_eq!(
        stageset["spec"]["serviceAccountName"], "deployer",
        "the patch touched only the annotation"
    );
    wait_until("the Kubernetes Event", || {
        kube.list("events.k8s.io/v1", "Event", Some("shop"))
            .iter()
            .any(|e| {
                e["note"] == "admin requested reconcile of stageset shop/web"
                    && e["regarding"]["name"] == "web"
            })
    });
    let r = api.post(
        "/api/v1/stagesets/shop/web/stages/app/approve",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let stageset = kube
        .peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "web")
        .expect("stageset");
    assert!(
        stageset["metadata"]["annotations"]["gates.sluice.dev/app"]
            .as_str()
            .is_some_and(|a| a.starts_with("approved by admin"))
    );

    // The diff reads the live Secret from the cluster, and redacts both sides.
    let diff = api.get("/api/v1/stagesets/shop/web/stages/app/diff", &admin);
    assert_eq!(diff.status, 200, "{}", diff.text);
    let items = diff.body["items"].as_array().expect("items");
    let secret = items
        .iter()
        .find(|i| i["key"] == "Secret/shop/db")
        .expect("secret");
    assert_eq!(secret["change"], "modified");
    assert_eq!(secret["live"]["data"]["token"], "++++++++");
    for planted in [PLANTED, crate::harness::LIVE_B64] {
        assert!(!diff.text.contains(planted));
    }

    // Project tokens are listed in the Project's status.
    let token = api.post(
        "/api/v1/projects/shop/roles/ci/token",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(token.status, 201, "{}", token.text);
    let jti = token.body["id"].as_str().expect("id").to_owned();
    let project = kube
        .peek("sluice.dev/v1alpha1", "Project", None, "shop")
        .expect("project");
    assert_eq!(project["status"]["tokens"]["ci"], json!([jti]), "{project}");

    // A StageSet created in the cluster shows up without a restart.
    apply(
        &kube,
        &json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
        "metadata": {"name": "late", "namespace": "shop"},
        "spec": {"project": "shop", "serviceAccountName": "deployer",
                 "stages": [{"name": "app", "sourceRef": {"kind": "GitRepository", "name": "app", "namespace": "flux-system"}}]}}),
    );
    wait_until("the new StageSet", || {
        api.get("/api/v1/stagesets/shop/late", &admin).status == 200
    });
    // Webhooks match through the GitRepository read from the cluster.
    drop(api);

    // A restart keeps accounts, keys and sessions (the state is in the Secret).
    let api = Api::start_cluster(&config, &pki, &extra);
    wait_until("/readyz", || {
        api.send("GET", "/readyz", None, &[], b"").status == 200
    });
    assert_eq!(api.get("/api/v1/session/userinfo", &admin).status, 200);
    assert_eq!(initial_password(&kube).as_deref(), Some(password.as_str()));
    let change = api.send(
        "PUT",
        "/api/v1/account/password",
        Some(&admin),
        &[],
        json!({"currentPassword": password, "newPassword": "a much better one"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(change.status, 200, "{}", change.text);
    assert!(
        initial_password(&kube).is_none(),
        "initial password Secret still there"
    );
    assert_eq!(api.get("/api/v1/session/userinfo", &admin).status, 401);
    api.login("admin", "a much better one");
}

#[test]
fn the_controller_renders_through_the_repo_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(
        repo.join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: remote}\n",
    )
    .expect("write");
    sluice_testkit::commit_all(&repo, "app");
    let kube = TestApi::start().expect("test API server");
    kube.allow(
        "system:serviceaccount:shop:deployer",
        &["*"],
        "*",
        Some("shop"),
    );
    let config = kubeconfig(tmp.path(), &kube.url);
    let pki = pki(tmp.path(), "repo");
    let repo_cache = tmp.path().join("repo-cache");
    let repo_server = crate::harness::repo_server(&pki, None, &repo_cache);
    let url = format!("https://localhost:{}", repo_server.addr.port());
    let controller_args = |with_certs: bool| {
        let mut command = std::process::Command::new(crate::harness::sluice_bin());
        command
            .args([
                "controller",
                "--metrics-addr",
                "127.0.0.1:0",
                "--namespace",
                "sluice-system",
                "--cache-dir",
            ])
            .arg(tmp.path().join("controller-cache"))
            .args(["--repo-server", &url])
            .env("KUBECONFIG", &config)
            .env_remove("KUBERNETES_SERVICE_HOST");
        if with_certs {
            command
                .arg("--repo-server-ca")
                .arg(&pki.ca)
                .arg("--repo-server-client-cert")
                .arg(&pki.client_cert)
                .arg("--repo-server-client-key")
                .arg(&pki.client_key);
        }
        command
    };
    // Without a client certificate the controller refuses to start.
    let out = controller_args(false).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repo-server-ca"));

    let mut controller = controller_args(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("controller");
    apply(
        &kube,
        &json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"serviceAccountName": "deployer", "stages": [
            {"name": "app", "source": {"git": {"url": format!("file://{}", repo.display()), "ref": "main"}}, "path": "app"}]}}),
    );
    wait_until("the ConfigMap the repo server rendered", || {
        kube.peek("v1", "ConfigMap", Some("shop"), "settings")
            .is_some_and(|cm| cm["data"]["mode"] == "remote")
    });
    let _ = controller.kill();
    let _ = controller.wait();
    // The repo server did the render, at the commit the controller pinned.
    let head = sluice_testkit::git(&repo, &["rev-parse", "HEAD"]);
    assert!(
        repo_server
            .logs()
            .lines()
            .any(|l| l.contains("\"message\":\"rendered\"") && l.contains(head.trim())),
        "no render at {head} in the repo server's log:\n{}",
        repo_server.logs()
    );
}
