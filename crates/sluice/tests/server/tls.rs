//! TLS: minimum versions checked with Debian's `openssl s_client` against the real server
//! (and, to prove the client can speak the old version at all, against `openssl s_server`);
//! mutual TLS between the API server and the repo server.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Api, Pki, Process, agent, fixture, pki};

/// Handshakes with `openssl s_client` forcing `version`; returns whether it connected.
fn handshake(port: u16, version: &str) -> bool {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            version,
        ])
        // OpenSSL's default security level refuses TLS 1.1 on the client side: lower it, so
        // a refusal can only come from the server.
        .args(["-cipher", "DEFAULT@SECLEVEL=0", "-brief"])
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client (apt-get install openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.contains("CONNECTION ESTABLISHED")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `openssl s_server` speaking only `version`, on a free port.
fn openssl_server(pki: &Pki, version: &str) -> (Child, u16) {
    let port = free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), version])
        .args(["-cipher", "DEFAULT@SECLEVEL=0", "-quiet"])
        .arg("-cert")
        .arg(&pki.server_cert)
        .arg("-key")
        .arg(&pki.server_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn server(dir: &Path, pki: &Pki, min: &str) -> Api {
    Api::start(dir, pki, &["--tls-min-version", min])
}

#[test]
fn old_tls_versions_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let pki = pki(tmp.path(), "tls");

    // The same client does speak TLS 1.1 and 1.2 to a server that allows them.
    let (mut old, port) = openssl_server(&pki, "-tls1_1");
    assert!(
        handshake(port, "-tls1_1"),
        "s_client cannot do TLS 1.1 at all"
    );
    let _ = old.kill();
    let _ = old.wait();
    let (mut old, port) = openssl_server(&pki, "-tls1_2");
    assert!(handshake(port, "-tls1_2"));
    let _ = old.kill();
    let _ = old.wait();

    let default = server(&dir, &pki, "1.2");
    let port = default.process.addr.port();
    assert!(!handshake(port, "-tls1_1"), "TLS 1.1 accepted");
    assert!(handshake(port, "-tls1_2"));
    assert!(handshake(port, "-tls1_3"));
    drop(default);

    let strict = server(&dir, &pki, "1.3");
    let port = strict.process.addr.port();
    assert!(!handshake(port, "-tls1_1"));
    assert!(
        !handshake(port, "-tls1_2"),
        "TLS 1.2 accepted with --tls-min-version 1.3"
    );
    assert!(handshake(port, "-tls1_3"));
    // And the API works over it with a rustls client.
    assert_eq!(strict.send("GET", "/healthz", None, &[], b"").status, 200);
}

#[test]
fn plain_http_only_when_asked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let pki = pki(tmp.path(), "tls");
    let tls = Api::start(&dir, &pki, &[]);
    let plain = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let url = format!("http://127.0.0.1:{}/healthz", tls.process.addr.port());
    assert!(
        plain.get(&url).call().is_err(),
        "plain HTTP served without --insecure"
    );
    drop(tls);

    let dir_s = dir.to_str().expect("utf-8");
    let insecure = Process::start(
        &[
            "server",
            "--local",
            dir_s,
            "--insecure",
            "--bcrypt-cost",
            "4",
        ],
        "sluice server listening",
    );
    let url = format!("http://127.0.0.1:{}/healthz", insecure.addr.port());
    let mut r = plain.get(&url).call().expect("plain HTTP");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.body_mut().read_to_string().expect("body"), "ok");
    assert!(insecure.logged(3, Some(319), "plain HTTP"));
    // No certificate given: a self-signed one is generated and logged.
    let selfsigned = Process::start(
        &["server", "--local", dir_s, "--bcrypt-cost", "4"],
        "sluice server listening",
    );
    assert!(selfsigned.logs().contains("BEGIN CERTIFICATE"));
}

fn repo_server(tmp: &Path, pki: &Pki) -> Process {
    crate::harness::repo_server(pki, Some(&tmp.join("local/sources")), &tmp.join("cache"))
}

#[test]
fn the_repo_server_requires_a_client_certificate() {
    let tmp = tempfile::tempdir().expect("tmp");
    fixture(&tmp.path().join("local"));
    let pki = pki(tmp.path(), "repo");
    let stranger = crate::harness::pki(tmp.path(), "stranger");
    let repo = repo_server(tmp.path(), &pki);
    let url = format!("https://localhost:{}/api/v1/render", repo.addr.port());
    let call = json!({
        "stage": {"name": "app", "sourceRef": {"kind": "GitRepository", "name": "app", "namespace": "flux-system"}, "engine": "plain"},
        "namespace": "shop",
        "releaseName": "web"
    })
    .to_string();
    let post = |agent: &ureq::Agent| {
        agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(call.as_bytes())
    };
    assert!(
        post(&agent(Some(&pki.ca), None)).is_err(),
        "no client certificate accepted"
    );
    assert!(
        post(&agent(
            Some(&pki.ca),
            Some((&stranger.client_cert, &stranger.client_key))
        ))
        .is_err(),
        "a certificate from another CA accepted"
    );
    let mut ok = post(&agent(
        Some(&pki.ca),
        Some((&pki.client_cert, &pki.client_key)),
    ))
    .expect("mTLS");
    assert_eq!(ok.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&ok.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(body["engine"], "plain");
    assert_eq!(body["objects"].as_array().map(Vec::len), Some(2));

    // It refuses to start without a client CA unless told --insecure.
    let out = Command::new(crate::harness::sluice_bin())
        .args(["repo-server", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--client-ca"));
}

#[test]
fn the_api_server_renders_through_the_repo_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let pki = pki(tmp.path(), "both");
    let repo = repo_server(tmp.path(), &pki);
    let url = format!("https://localhost:{}", repo.addr.port());
    let api = Api::start(
        &dir,
        &pki,
        &[
            "--repo-server",
            &url,
            "--repo-server-ca",
            pki.ca.to_str().expect("utf-8"),
            "--repo-server-client-cert",
            pki.client_cert.to_str().expect("utf-8"),
            "--repo-server-client-key",
            pki.client_key.to_str().expect("utf-8"),
        ],
    );
    let admin = api.admin();
    let r = api.get("/api/v1/stagesets/shop/web/stages/app/manifests", &admin);
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = r.body["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["kind"] == "Secret")
        .cloned()
        .expect("secret");
    assert_eq!(secret["stringData"]["password"], "++++++++");
    // A render failure on the repo server comes back as the stage's problem.
    let r = api.get("/api/v1/stagesets/shop/web/stages/extra/manifests", &admin);
    assert_eq!(r.status, 409, "{}", r.text);
    drop(repo);
    // The repo server gone: 503, not a crash (failed renders are not cached; good ones are
    // served for a few seconds, so ask for the stage that failed).
    let r = api.get("/api/v1/stagesets/shop/web/stages/extra/manifests", &admin);
    assert_eq!(r.status, 503, "{}", r.text);
}
