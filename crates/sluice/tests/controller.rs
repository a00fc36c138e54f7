//! `sluice controller` as a process: it finds the cluster through KUBECONFIG (the in-process
//! test API server), takes the leader Lease, reconciles a StageSet created over HTTP, serves
//! /healthz and /metrics, and stops cleanly on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_testapi::TestApi;
use sluice_testkit::commit_all;

fn http(address: &str, method: &str, path: &str, content_type: &str, body: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn the_controller_process_reconciles_serves_metrics_and_stops_on_sigterm() {
    let work = tempfile::tempdir().expect("tmp");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(
        repo.join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: live}\n",
    )
    .expect("write");
    commit_all(&repo, "app");
    let api = TestApi::start().expect("api");
    api.allow(
        "system:serviceaccount:shop:deployer",
        &["*"],
        "*",
        Some("shop"),
    );
    let kubeconfig = work.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: '{}'}}}}]\nusers: [{{name: t, user: {{}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: t}}}}]\ncurrent-context: t\n",
            api.url
        ),
    )
    .expect("kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "controller",
            "--metrics-addr",
            &metrics,
            "--namespace",
            "sluice-system",
            "--cache-dir",
        ])
        .arg(work.path().join("cache"))
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "replica-1")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");

    let deadline = Instant::now() + Duration::from_secs(60);
    while !http(&metrics, "GET", "/healthz", "text/plain", "").is_some_and(|r| r.ends_with("ok")) {
        assert!(Instant::now() < deadline, "no /healthz");
        std::thread::sleep(Duration::from_millis(50));
    }

    let host = api.url.trim_start_matches("http://").to_owned();
    let stageset = serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"serviceAccountName": "deployer", "stages": [
            {"name": "app", "source": {"git": {"url": format!("file://{}", repo.display()), "ref": "main"}}, "path": "app"}]},
    });
    let created = http(
        &host,
        "PATCH",
        "/apis/sluice.dev/v1alpha1/namespaces/shop/stagesets/app?fieldManager=test",
        "application/apply-patch+yaml",
        &stageset.to_string(),
    )
    .expect("create");
    assert!(created.starts_with("HTTP/1.1 200"), "{created}");

    let ready = || {
        api.peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "app")
            .is_some_and(|s| {
                s["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    };
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "not reconciled: {:?}",
            api.peek("sluice.dev/v1alpha1", "StageSet", Some("shop"), "app")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cm = api
        .peek("v1", "ConfigMap", Some("shop"), "settings")
        .expect("applied");
    assert_eq!(cm["data"]["mode"], "live");
    let exposition = http(&metrics, "GET", "/metrics", "text/plain", "").expect("metrics");
    // At least one apply; a step that ran on a stale cached copy may have re-applied it.
    let applied: u64 = exposition
        .lines()
        .find_map(|l| l.strip_prefix("sluice_objects_applied_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(applied >= 1, "{exposition}");
    assert!(
        exposition.contains("sluice_reconcile_duration_seconds_bucket"),
        "{exposition}"
    );

    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "exit {status:?}: {stderr}");
}
