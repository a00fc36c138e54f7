//! Authorization: policy files, deny-wins, list filtering and pagination, hidden objects,
//! project role tokens, and `sluice rbac can`.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Api, fixture, pki, sluice_bin};

const POLICY: &str = "\
# developers see and reconcile the shop, but not production
p, role:shop-dev, stagesets, get, shop/*, allow
p, role:shop-dev, stagesets, reconcile, shop/*, allow
p, role:shop-dev, stagesets, reconcile, shop/shop-prod/*, deny
p, role:shop-dev, logs, get, shop/*, allow
p, contractors, stagesets, get, shop/shop-prod/*, deny
g, alice, role:shop-dev
g, bob, role:shop-dev
g, bob, contractors
";

fn start_with_users() -> (tempfile::TempDir, Api, String, String, String) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let policy = tmp.path().join("policy.csv");
    std::fs::write(&policy, POLICY).expect("policy");
    let pki = pki(tmp.path(), "api");
    let api = Api::start(
        &dir,
        &pki,
        &["--rbac-policy", policy.to_str().expect("utf-8")],
    );
    let admin = api.admin();
    for user in ["alice", "bob"] {
        let r = api.post(
            "/api/v1/accounts",
            Some(&admin),
            &json!({"name": user, "capabilities": ["login"], "password": format!("{user}-password")}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let alice = api.login("alice", "alice-password");
    let bob = api.login("bob", "bob-password");
    (tmp, api, admin, alice, bob)
}

fn names(reply: &Value) -> Vec<String> {
    reply["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["metadata"]["namespace"].as_str().unwrap_or_default(),
                s["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn lists_are_filtered_and_deny_wins() {
    let (_tmp, api, admin, alice, bob) = start_with_users();
    let all = names(&api.get("/api/v1/stagesets", &admin).body);
    assert_eq!(
        all,
        ["bank/ledger", "shop-prod/web", "shop/api", "shop/web"]
    );
    let seen = names(&api.get("/api/v1/stagesets", &alice).body);
    assert_eq!(seen, ["shop-prod/web", "shop/api", "shop/web"]);
    // bob is a contractor too: the deny on production beats his developer allow.
    let seen = names(&api.get("/api/v1/stagesets", &bob).body);
    assert_eq!(seen, ["shop/api", "shop/web"]);

    // Hidden and missing objects get the same answer.
    let hidden = api.get("/api/v1/stagesets/bank/ledger", &alice);
    let missing = api.get("/api/v1/stagesets/bank/nothing", &alice);
    assert_eq!((hidden.status, missing.status), (404, 404));
    assert_eq!(
        hidden.body["error"]["reason"],
        missing.body["error"]["reason"]
    );
    assert_eq!(api.get("/api/v1/stagesets/shop-prod/web", &bob).status, 404);
    assert_eq!(
        api.get("/api/v1/stagesets/shop-prod/web", &alice).status,
        200
    );

    // Reconcile: allowed in shop, denied (403, visible) in production, 404 when hidden.
    let reconcile = |token: &str, ns: &str, name: &str| {
        api.post(
            &format!("/api/v1/stagesets/{ns}/{name}/reconcile"),
            Some(token),
            &json!({}),
        )
        .status
    };
    assert_eq!(reconcile(&alice, "shop", "web"), 202);
    assert_eq!(reconcile(&alice, "shop-prod", "web"), 403);
    assert_eq!(reconcile(&alice, "bank", "ledger"), 404);
    assert!(api.process.logged(2, Some(285), "access denied"));
    // alice has no gates permission.
    let approve = api.post(
        "/api/v1/stagesets/shop/web/stages/app/approve",
        Some(&alice),
        &json!({}),
    );
    assert_eq!(approve.status, 403);
    let approve = api.post(
        "/api/v1/stagesets/shop/web/stages/app/approve",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(approve.status, 202);
    let stages = api.get("/api/v1/stagesets/shop/web/stages", &alice);
    assert!(
        stages.body["items"][0]["approval"]
            .as_str()
            .is_some_and(|a| a.starts_with("approved by admin")),
        "{}",
        stages.text
    );
    // Non-admins cannot manage accounts, and do not see them.
    assert_eq!(api.get("/api/v1/accounts", &alice).body["items"], json!([]));
    assert_eq!(api.get("/api/v1/accounts/bob", &alice).status, 404);
    let r = api.post(
        "/api/v1/accounts",
        Some(&alice),
        &json!({"name": "mallory"}),
    );
    assert_eq!(r.status, 403);
    // Events name the actor.
    let events = api.get("/api/v1/stagesets/shop/web/events", &alice);
    assert_eq!(events.status, 200, "{}", events.text);
    let messages: Vec<&str> = events.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"alice requested reconcile of stageset shop/web"),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("admin approved the gate of stage app")),
        "{messages:?}"
    );
}

#[test]
fn pagination_visits_each_visible_item_once() {
    let (_tmp, api, admin, alice, _bob) = start_with_users();
    for (token, expected) in [(&alice, 3), (&admin, 4)] {
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &next {
                Some(c) => format!("/api/v1/stagesets?limit=1&continue={c}"),
                None => "/api/v1/stagesets?limit=1".to_owned(),
            };
            let page = api.get(&path, token);
            assert_eq!(page.status, 200, "{}", page.text);
            seen.extend(names(&page.body));
            pages += 1;
            match page.body["metadata"]["continue"].as_str() {
                Some(c) => next = Some(c.to_owned()),
                None => break,
            }
            assert!(pages <= expected, "too many pages");
        }
        let mut unique = seen.clone();
        unique.dedup();
        assert_eq!(seen.len(), expected, "{seen:?}");
        assert_eq!(unique, seen);
    }
    for bad in ["limit=0", "limit=x", "continue=%%%", "continue=bm9wZQ"] {
        let r = api.get(&format!("/api/v1/stagesets?{bad}"), &admin);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[test]
fn project_tokens_stay_in_their_project() {
    let (_tmp, api, admin, alice, _bob) = start_with_users();
    let r = api.post(
        "/api/v1/projects/shop/roles/ci/token",
        Some(&admin),
        &json!({"expiresIn": 3600}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.body["token"].as_str().expect("token").to_owned();
    let jti = r.body["id"].as_str().expect("id").to_owned();
    let project = api.get("/api/v1/projects/shop", &admin);
    assert_eq!(project.body["status"]["tokens"]["ci"], json!([jti]));

    assert_eq!(
        names(&api.get("/api/v1/stagesets", &token).body),
        ["shop-prod/web", "shop/api", "shop/web"]
    );
    assert_eq!(
        api.post(
            "/api/v1/stagesets/shop/web/reconcile",
            Some(&token),
            &json!({})
        )
        .status,
        202
    );
    assert_eq!(api.get("/api/v1/stagesets/bank/ledger", &token).status, 404);
    assert_eq!(api.get("/api/v1/accounts", &token).body["items"], json!([]));
    assert_eq!(api.get("/api/v1/projects/bank", &token).status, 404);

    // A role whose policy reaches outside its project grants nothing.
    let sneaky = api.post(
        "/api/v1/projects/shop/roles/sneaky/token",
        Some(&admin),
        &json!({}),
    );
    assert_eq!(sneaky.status, 201);
    let sneaky = sneaky.body["token"].as_str().expect("token").to_owned();
    assert_eq!(
        api.get("/api/v1/stagesets", &sneaky).body["items"],
        json!([])
    );
    assert!(api.process.logs().contains("project role policy refused"));

    // Only those allowed to update the project mint tokens; unknown roles are 404.
    assert_eq!(
        api.post(
            "/api/v1/projects/shop/roles/ci/token",
            Some(&alice),
            &json!({})
        )
        .status,
        404
    );
    assert_eq!(
        api.post(
            "/api/v1/projects/shop/roles/nope/token",
            Some(&admin),
            &json!({})
        )
        .status,
        404
    );

    // Revocation.
    let del = api.send(
        "DELETE",
        &format!("/api/v1/projects/shop/roles/ci/token/{jti}"),
        Some(&admin),
        &[],
        b"",
    );
    assert_eq!(del.status, 204, "{}", del.text);
    assert_eq!(api.get("/api/v1/stagesets", &token).status, 401);
    let again = api.send(
        "DELETE",
        &format!("/api/v1/projects/shop/roles/ci/token/{jti}"),
        Some(&admin),
        &[],
        b"",
    );
    assert_eq!(again.status, 404);
}

#[test]
fn a_malformed_policy_stops_the_server_with_the_line_number() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let policy = tmp.path().join("policy.csv");
    std::fs::write(
        &policy,
        "p, a, stagesets, get, *, allow\n\np, a, stagesets, get\n",
    )
    .expect("w");
    let out = Command::new(sluice_bin())
        .args([
            "server",
            "--local",
            dir.to_str().expect("utf-8"),
            "--insecure",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--rbac-policy", policy.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy.csv:3:"), "{err}");
}

#[test]
fn rbac_can_answers_offline() {
    let tmp = tempfile::tempdir().expect("tmp");
    let policy = tmp.path().join("policy.csv");
    std::fs::write(&policy, POLICY).expect("policy");
    let can = |args: &[&str]| {
        let out = Command::new(sluice_bin())
            .args(["rbac", "can"])
            .args(args)
            .args(["--policy", policy.to_str().expect("utf-8")])
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(
        can(&["alice", "reconcile", "stagesets", "shop/shop/web"]).0,
        Some(0)
    );
    assert_eq!(
        can(&["alice", "reconcile", "stagesets", "shop/shop/web"]).1,
        "yes"
    );
    assert_eq!(
        can(&["alice", "reconcile", "stagesets", "shop/shop-prod/web"]).1,
        "no"
    );
    assert_eq!(
        can(&["alice", "get", "stagesets", "shop/shop-prod/web"]).1,
        "yes"
    );
    assert_eq!(
        can(&["bob", "get", "stagesets", "shop/shop-prod/web"]).1,
        "no"
    );
    assert_eq!(
        can(&[
            "carol",
            "get",
            "stagesets",
            "shop/shop-prod/web",
            "--group",
            "contractors"
        ])
        .1,
        "no"
    );
    assert_eq!(
        can(&["carol", "get", "stagesets", "shop/shop/web"]).0,
        Some(1)
    );
    assert_eq!(
        can(&[
            "carol",
            "get",
            "stagesets",
            "shop/shop/web",
            "--default-role",
            "role:readonly"
        ])
        .1,
        "yes"
    );
    assert_eq!(can(&["admin", "delete", "accounts", "anyone"]).1, "yes");
    let (code, _, err) = can(&["alice", "fly", "stagesets", "x"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("unknown action"), "{err}");
}

#[test]
fn a_broken_yaml_file_stops_the_local_server_naming_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    std::fs::write(dir.join("broken.yaml"), "kind: StageSet\nspec: [unclosed\n").expect("w");
    let out = Command::new(sluice_bin())
        .args([
            "server",
            "--local",
            dir.to_str().expect("utf-8"),
            "--insecure",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml"), "{err}");
}
