//! StageSets and Projects: rendered manifests and diffs with Secrets redacted everywhere.

use serde_json::json;

use crate::harness::{Api, LIVE_B64, PLANTED, PLANTED_B64, fixture, pki};

#[test]
fn secrets_never_leave_the_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let api = Api::start(&dir, &pki(tmp.path(), "api"), &["--log-level", "debug"]);
    let admin = api.admin();
    let planted = [
        PLANTED,
        PLANTED_B64,
        "planted-binary-value-91c2",
        LIVE_B64,
        "live-secret-value-0d1e",
        "planted-url-token",
    ];
    let mut bodies = Vec::new();

    let manifests = api.get("/api/v1/stagesets/shop/web/stages/app/manifests", &admin);
    assert_eq!(manifests.status, 200, "{}", manifests.text);
    let objects = manifests.body["objects"].as_array().expect("objects");
    let secret = objects
        .iter()
        .find(|o| o["kind"] == "Secret")
        .expect("secret rendered");
    assert_eq!(secret["stringData"]["password"], "++++++++");
    assert_eq!(secret["data"]["token"], "++++++++");
    assert!(
        secret["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none()
    );
    let config = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("configmap");
    assert_eq!(config["data"]["color"], "blue", "non-secrets are untouched");
    bodies.push(manifests.text);

    let diff = api.get("/api/v1/stagesets/shop/web/stages/app/diff", &admin);
    assert_eq!(diff.status, 200, "{}", diff.text);
    let items = diff.body["items"].as_array().expect("items");
    let secret = items
        .iter()
        .find(|i| i["key"] == "Secret/shop/db")
        .expect("secret diff");
    assert_eq!(secret["change"], "modified");
    // The changed key shows that it changed, never what it was or is.
    assert_ne!(
        secret["desired"]["data"]["token"],
        secret["live"]["data"]["token"]
    );
    let config = items
        .iter()
        .find(|i| i["key"] == "ConfigMap/shop/settings")
        .expect("cm");
    assert_eq!(config["change"], "added");
    bodies.push(diff.text);

    let stageset = api.get("/api/v1/stagesets/shop/web", &admin);
    assert_eq!(stageset.status, 200);
    assert_eq!(
        stageset.body["spec"]["stages"][1]["source"]["git"]["url"],
        "https://127.0.0.1:1/acme/extra.git"
    );
    bodies.push(stageset.text);
    bodies.push(api.get("/api/v1/stagesets", &admin).text);
    bodies.push(api.get("/api/v1/stagesets/shop/web/stages", &admin).text);

    // An unknown stage, and a stage whose source cannot be fetched here (no network).
    assert_eq!(
        api.get("/api/v1/stagesets/shop/web/stages/nope/manifests", &admin)
            .status,
        404
    );
    let unreachable = api.get("/api/v1/stagesets/shop/web/stages/extra/manifests", &admin);
    assert_eq!(unreachable.status, 409, "{}", unreachable.text);
    bodies.push(unreachable.text);

    let logs = api.process.logs();
    // The manifests and the diff came from one render (renders are cached for a few seconds).
    let renders = logs
        .lines()
        .filter(|l| l.contains("\"message\":\"rendered\"") && l.contains("\"stage\":\"app\""))
        .count();
    assert_eq!(renders, 1, "{logs}");
    for value in planted {
        for body in &bodies {
            assert!(!body.contains(value), "{value} in a response: {body}");
        }
        assert!(!logs.contains(value), "{value} in the logs");
    }
    let _ = json!({});
}
