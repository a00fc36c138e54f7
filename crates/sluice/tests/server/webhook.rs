//! Webhooks: signatures checked in constant time, bodies capped, payloads distrusted; the
//! only effect is a reconcile request for the StageSets whose source was pushed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Api, fixture, pki};

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

fn start(tmp: &std::path::Path, extra: &[&str]) -> Api {
    let dir = tmp.join("local");
    fixture(&dir);
    for (name, secret) in [
        ("github", "gh-secret"),
        ("gitlab", "gl-secret"),
        ("generic", "gen-secret"),
    ] {
        std::fs::write(tmp.join(name), format!("{secret}\n")).expect("secret");
    }
    let gh = tmp.join("github");
    let gl = tmp.join("gitlab");
    let gen_ = tmp.join("generic");
    let mut args = vec![
        "--webhook-github-secret-file",
        gh.to_str().expect("utf-8"),
        "--webhook-gitlab-secret-file",
        gl.to_str().expect("utf-8"),
        "--webhook-generic-secret-file",
        gen_.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Api::start(&dir, &pki(tmp, "api"), &refs)
}

fn reconcile_events(api: &Api, token: &str, key: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/stagesets/{key}/events"), token)
        .body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_for_events(api: &Api, token: &str, key: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = reconcile_events(api, token, key);
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn signed_pushes_request_reconciles_of_matching_stagesets_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    let api = start(tmp.path(), &[]);
    let admin = api.admin();
    let push = json!({
        "ref": "refs/heads/main",
        "repository": {"clone_url": "https://github.com/acme/app.git", "html_url": "https://github.com/acme/app"},
        "commits": [{"message": "rm -rf /"}],
        "sender": {"login": "someone"}
    })
    .to_string();
    let sig = format!("sha256={}", hmac_hex(b"gh-secret", push.as_bytes()));

    // A bad signature: 401, nothing reconciled.
    let bad = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", "sha256=00ff"),
        ],
        push.as_bytes(),
    );
    assert_eq!(bad.status, 401, "{}", bad.text);
    let wrong_secret = format!("sha256={}", hmac_hex(b"not-the-secret", push.as_bytes()));
    let bad = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &wrong_secret),
        ],
        push.as_bytes(),
    );
    assert_eq!(bad.status, 401);
    std::thread::sleep(Duration::from_millis(300));
    assert!(reconcile_events(&api, &admin, "shop/web").is_empty());
    assert!(api.process.logged(3, Some(345), "webhook refused"));

    let ok = api.send(
        "POST",
        "/api/webhook",
        None,
        &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
        push.as_bytes(),
    );
    assert_eq!(ok.status, 202, "{}", ok.text);
    // Every fixture StageSet's first stage follows acme/app@main.
    assert_eq!(ok.body["matched"], 4);
    let events = wait_for_events(&api, &admin, "shop/web", 1);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0]["message"],
        "webhook:github requested reconcile of stageset shop/web"
    );
    let stageset = api.get("/api/v1/stagesets/shop/web", &admin);
    assert!(
        stageset.body["metadata"]["annotations"]["sluice.dev/reconcile-requested-at"].is_string()
    );

    // Another branch, another repository: nothing matches.
    for other in [
        json!({"ref": "refs/heads/dev", "repository": {"clone_url": "https://github.com/acme/app.git"}}),
        json!({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/acme/other.git"}}),
    ] {
        let body = other.to_string();
        let sig = format!("sha256={}", hmac_hex(b"gh-secret", body.as_bytes()));
        let r = api.send(
            "POST",
            "/api/webhook",
            None,
            &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
            body.as_bytes(),
        );
        assert_eq!(
            (r.status, r.body["matched"].as_u64()),
            (202, Some(0)),
            "{}",
            r.text
        );
    }

    // GitLab (token header) and the generic HMAC header.
    let gl = json!({"ref": "refs/heads/main", "project": {"git_http_url": "http://127.0.0.1:1/acme/extra.git"}}).to_string();
    let r = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", "gl-secret"),
        ],
        gl.as_bytes(),
    );
    assert_eq!(
        (r.status, r.body["matched"].as_u64()),
        (202, Some(4)),
        "{}",
        r.text
    );
    let r = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-Gitlab-Event", "Push Hook"),
            ("X-Gitlab-Token", "gl-secreT"),
        ],
        gl.as_bytes(),
    );
    assert_eq!(r.status, 401);
    let generic =
        json!({"repository": "git@github.com:acme/app.git", "ref": "refs/heads/main"}).to_string();
    let sig = format!("sha256={}", hmac_hex(b"gen-secret", generic.as_bytes()));
    let r = api.send(
        "POST",
        "/api/webhook",
        None,
        &[("X-Sluice-Signature", &sig)],
        generic.as_bytes(),
    );
    assert_eq!(
        (r.status, r.body["matched"].as_u64()),
        (202, Some(4)),
        "{}",
        r.text
    );
}

#[test]
fn malformed_unknown_and_oversized_webhooks_get_4xx() {
    let tmp = tempfile::tempdir().expect("tmp");
    let api = start(tmp.path(), &["--webhook-max-body", "4096"]);
    let signed = |body: &[u8]| format!("sha256={}", hmac_hex(b"gh-secret", body));
    // Unknown provider.
    let r = api.send("POST", "/api/webhook", None, &[("X-Something", "x")], b"{}");
    assert_eq!(r.status, 400, "{}", r.text);
    // Oversized (checked before the signature: the body is never buffered past the cap).
    let answer = api.head_only(
        &api.ca,
        "POST /api/webhook HTTP/1.1\r\nHost: localhost\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 8192\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":413"), "{answer}");
    // A body without a declared length is cut at the limit too (chunked, streamed).
    let big = vec![b' '; 8192];
    let r = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", &signed(&big)),
            ("Transfer-Encoding", "chunked"),
        ],
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text);
    // Correctly signed but malformed payloads.
    for body in [
        &b"not json"[..],
        br#"[1, 2]"#,
        br#"{"ref": "refs/heads/main"}"#,
        br#"{"ref": 7, "repository": {"clone_url": "https://github.com/acme/app"}}"#,
        br#"{"ref": "refs/heads/main", "repository": {"clone_url": ["x"]}}"#,
        br#"{"repository": {"clone_url": "https://github.com/acme/app"}}"#,
    ] {
        let r = api.send(
            "POST",
            "/api/webhook",
            None,
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signed(body)),
            ],
            body,
        );
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text
        );
        assert_eq!(r.body["error"]["code"], 400);
    }
    // Ping.
    let r = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-GitHub-Event", "ping"),
            ("X-Hub-Signature-256", &signed(b"{}")),
        ],
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // The server is still fine.
    assert_eq!(api.send("GET", "/healthz", None, &[], b"").status, 200);
}

#[test]
fn an_unconfigured_provider_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let api = Api::start(&dir, &pki(tmp.path(), "api"), &[]);
    let r = api.send(
        "POST",
        "/api/webhook",
        None,
        &[
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not configured"))
    );
}

#[test]
fn a_full_queue_answers_503_and_queues_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Room for 5 requests, carried out one per second: a push matching 4 StageSets fits once.
    let api = start(tmp.path(), &["--webhook-queue", "5", "--webhook-rate", "1"]);
    let admin = api.admin();
    let push = json!({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/acme/app.git"}}).to_string();
    let sig = format!("sha256={}", hmac_hex(b"gh-secret", push.as_bytes()));
    let send = || {
        api.send(
            "POST",
            "/api/webhook",
            None,
            &[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)],
            push.as_bytes(),
        )
    };
    assert_eq!(send().status, 202);
    let full = send();
    assert_eq!(full.status, 503, "{}", full.text);
    assert_eq!(full.body["error"]["code"], 503);
    // Only the first push's four requests are ever carried out.
    std::thread::sleep(Duration::from_millis(4500));
    let total: usize = ["shop/web", "shop/api", "shop-prod/web", "bank/ledger"]
        .iter()
        .map(|k| reconcile_events(&api, &admin, k).len())
        .sum();
    assert_eq!(total, 4);
}
