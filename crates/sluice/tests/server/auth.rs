//! Local accounts: login, sessions, password changes, API keys, brute force, token attacks.

use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::harness::{Api, fixture, pki};

fn start() -> (tempfile::TempDir, Api) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let pki = pki(tmp.path(), "api");
    let api = Api::start(&dir, &pki, &[]);
    (tmp, api)
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

#[test]
fn login_logout_and_password_change() {
    let (_tmp, api) = start();
    assert_eq!(mode(&api.dir.join("initial-admin-password")), 0o600);
    assert_eq!(mode(&api.dir.join("sluice-server-state.json")), 0o600);
    let state = std::fs::read_to_string(api.dir.join("sluice-server-state.json")).expect("state");
    let initial = api.initial_password();
    assert!(
        !state.contains(&initial),
        "plain password in the state file"
    );
    assert!(state.contains("$2"), "no bcrypt hash in the state file");

    // Unknown user and wrong password look the same.
    let wrong = api.post(
        "/api/v1/session",
        None,
        &json!({"username": "admin", "password": "nope"}),
    );
    let unknown = api.post(
        "/api/v1/session",
        None,
        &json!({"username": "ghost", "password": "nope"}),
    );
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body["error"]["code"], 401);

    let token = api.admin();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).expect("payload"))
            .expect("b64"),
    )
    .expect("claims");
    for claim in ["iss", "sub", "iat", "nbf", "exp", "jti"] {
        assert!(!claims[claim].is_null(), "claim {claim} missing: {claims}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0),
        24 * 3600
    );
    let me = api.get("/api/v1/session/userinfo", &token);
    assert_eq!(
        (me.status, me.body["username"].as_str()),
        (200, Some("admin"))
    );
    assert!(api.process.logged(1, None, "login succeeded"));

    // DELETE /session revokes exactly that token.
    let other = api.admin();
    let out = api.send("DELETE", "/api/v1/session", Some(&token), &[], b"");
    assert_eq!(out.status, 200, "{}", out.text);
    assert_eq!(api.get("/api/v1/session/userinfo", &token).status, 401);
    assert_eq!(api.get("/api/v1/session/userinfo", &other).status, 200);

    // A password change revokes every earlier token and removes the initial password file.
    let before = api.admin();
    let change = api.send(
        "PUT",
        "/api/v1/account/password",
        Some(&before),
        &[],
        json!({"currentPassword": initial, "newPassword": "correct horse battery"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(change.status, 200, "{}", change.text);
    assert_eq!(api.get("/api/v1/session/userinfo", &before).status, 401);
    assert_eq!(api.get("/api/v1/session/userinfo", &other).status, 401);
    assert!(!api.dir.join("initial-admin-password").exists());
    let r = api.post(
        "/api/v1/session",
        None,
        &json!({"username": "admin", "password": initial}),
    );
    assert_eq!(r.status, 401);
    let fresh = api.login("admin", "correct horse battery");
    assert_eq!(api.get("/api/v1/session/userinfo", &fresh).status, 200);
    // A wrong current password changes nothing.
    let refused = api.send(
        "PUT",
        "/api/v1/account/password",
        Some(&fresh),
        &[],
        json!({"currentPassword": "not it at all", "newPassword": "another one here"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(refused.status, 403);
    assert_eq!(api.get("/api/v1/session/userinfo", &fresh).status, 200);
    // Nobody locks themselves out or changes their password without the current one.
    let patch = |body: Value| {
        api.send(
            "PATCH",
            "/api/v1/accounts/admin",
            Some(&fresh),
            &[],
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(patch(json!({"enabled": false})).status, 409);
    assert_eq!(patch(json!({"capabilities": []})).status, 409);
    assert_eq!(patch(json!({"password": "stolen-session-pw"})).status, 409);
    assert_eq!(api.get("/api/v1/session/userinfo", &fresh).status, 200);
    // Usernames with control characters never reach a log line.
    let r = api.post(
        "/api/v1/session",
        None,
        &json!({"username": "eve\nINFO forged", "password": "x"}),
    );
    assert_eq!(r.status, 400);
    // Nothing secret in the logs.
    let logs = api.process.logs();
    assert!(!logs.contains(&initial) && !logs.contains("correct horse battery"));
}

#[test]
fn bad_input_gets_clear_errors() {
    let (_tmp, api) = start();
    let long = "a".repeat(65);
    for body in [
        json!({"username": "", "password": "x"}),
        json!({"username": "admin", "password": ""}),
        json!({"username": long, "password": "x"}),
        json!({"username": "admin"}),
        json!({"username": 5, "password": "x"}),
    ] {
        let r = api.post("/api/v1/session", None, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.body["error"]["message"].is_string(), "{}", r.text);
    }
    let r = api.send("POST", "/api/v1/session", None, &[], b"{not json");
    assert_eq!(r.status, 400);
    // Refused on the declared length, before a byte of the body is read.
    let answer = api.head_only(
        &api.ca,
        "POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 204800\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":413"), "{answer}");
    let r = api.send("GET", "/api/v1/nowhere", None, &[], b"");
    assert_eq!(
        (r.status, r.body["error"]["code"].as_u64()),
        (404, Some(404))
    );
    let r = api.send("PATCH", "/api/v1/session", None, &[], b"");
    assert_eq!(
        (r.status, r.body["error"]["code"].as_u64()),
        (405, Some(405))
    );
    let r = api.send("GET", "/api/v1/stagesets", None, &[], b"");
    assert_eq!(r.status, 401);
    let r = api.send(
        "GET",
        "/api/v1/stagesets",
        None,
        &[("Authorization", "Basic YTpi")],
        b"",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn brute_force_is_slowed_and_logged() {
    let (_tmp, api) = start();
    let attempt = |user: &str| {
        let start = Instant::now();
        let r = api.post(
            "/api/v1/session",
            None,
            &json!({"username": user, "password": "guess"}),
        );
        assert_eq!(r.status, 401);
        start.elapsed()
    };
    for _ in 0..5 {
        assert!(attempt("admin") < Duration::from_millis(450));
    }
    let sixth = attempt("admin");
    let seventh = attempt("admin");
    assert!(sixth >= Duration::from_millis(500), "{sixth:?}");
    assert!(seventh >= Duration::from_millis(1000), "{seventh:?}");
    // Other usernames are not slowed down by admin's failures.
    assert!(attempt("alice") < Duration::from_millis(450));
    assert!(api.process.logged(5, Some(307), "brute force"));
    // The right password still works (after the delay).
    let r = api.post(
        "/api/v1/session",
        None,
        &json!({"username": "admin", "password": api.initial_password()}),
    );
    assert_eq!(r.status, 200);
}

fn forge(key: &[u8], alg: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).expect("encode")
}

#[test]
fn token_attacks_are_refused() {
    let (_tmp, api) = start();
    let good = api.admin();
    let key = api.signing_key();
    let generation = api.generation("admin");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let claims = |iat: i64, nbf: i64, exp: i64| {
        json!({"iss": "sluice", "sub": "admin", "iat": iat, "nbf": nbf, "exp": exp,
               "jti": format!("forged-{iat}-{nbf}"), "kind": "session", "generation": generation})
    };
    // Control: a token minted with the real key and sane times is accepted, so the refusals
    // below are about what each one changes.
    let control = forge(&key, Algorithm::HS256, &claims(now, now, now + 600));
    assert_eq!(api.get("/api/v1/session/userinfo", &control).status, 200);

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = claims(now, now, now + 600);
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&payload)
    );
    let wrong_key = forge(&[9u8; 32], Algorithm::HS256, &payload);
    let hs512 = forge(&key, Algorithm::HS512, &payload);
    let expired = forge(
        &key,
        Algorithm::HS256,
        &claims(now - 7200, now - 7200, now - 3600),
    );
    let not_yet = forge(&key, Algorithm::HS256, &claims(now, now + 3600, now + 7200));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut tampered_claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .expect("b64"),
    )
    .expect("json");
    tampered_claims["sub"] = json!("root");
    parts[1] = b64(&tampered_claims);
    let tampered = parts.join(".");
    let other_issuer = forge(
        &key,
        Algorithm::HS256,
        &json!({"iss": "https://evil.example", "sub": "admin", "iat": now, "nbf": now, "exp": now + 600, "jti": "x"}),
    );
    for (name, token) in [
        ("alg none", none.as_str()),
        ("wrong key", &wrong_key),
        ("HS512", &hs512),
        ("expired", &expired),
        ("not yet valid", &not_yet),
        ("tampered", &tampered),
        ("unknown issuer", &other_issuer),
        ("garbage", "not.a.token"),
    ] {
        let r = api.get("/api/v1/stagesets", token);
        assert_eq!(r.status, 401, "{name} accepted: {}", r.text);
        assert_eq!(r.body["error"]["code"], 401, "{name}");
    }
    assert!(api.process.logged(3, Some(347), "malformed or forged"));
}

#[test]
fn api_keys_live_and_die_with_their_account() {
    let (_tmp, api) = start();
    let admin = api.admin();
    let create = api.post(
        "/api/v1/accounts",
        Some(&admin),
        &json!({"name": "ci", "capabilities": ["apiKey"]}),
    );
    assert_eq!(create.status, 201, "{}", create.text);
    assert_eq!(
        api.post("/api/v1/accounts", Some(&admin), &json!({"name": "ci"}))
            .status,
        409
    );
    assert_eq!(
        api.post(
            "/api/v1/accounts",
            Some(&admin),
            &json!({"name": "Bad Name!"})
        )
        .status,
        400
    );
    let key = api.post(
        "/api/v1/accounts/ci/tokens",
        Some(&admin),
        &json!({"expiresIn": "90d"}),
    );
    assert_eq!(key.status, 201, "{}", key.text);
    let token = key.body["token"].as_str().expect("token").to_owned();
    let id = key.body["id"].as_str().expect("id").to_owned();
    assert!(key.body["expiresAt"].is_string());
    let me = api.get("/api/v1/session/userinfo", &token);
    assert_eq!((me.status, me.body["kind"].as_str()), (200, Some("apiKey")));
    // A user with no role sees nothing, but is authenticated.
    assert_eq!(
        api.get("/api/v1/stagesets", &token).body["items"],
        json!([])
    );
    let list = api.get("/api/v1/accounts/ci/tokens", &admin);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    assert!(
        !list.text.contains(&token),
        "a listing must not repeat the token"
    );

    // Revoke by id.
    assert_eq!(
        api.send(
            "DELETE",
            &format!("/api/v1/accounts/ci/tokens/{id}"),
            Some(&admin),
            &[],
            b""
        )
        .status,
        204
    );
    assert_eq!(api.get("/api/v1/session/userinfo", &token).status, 401);

    // Disabling the account, or removing the capability, kills its keys at once.
    let second = api.post("/api/v1/accounts/ci/tokens", Some(&admin), &json!({}));
    let second = second.body["token"].as_str().expect("token").to_owned();
    assert_eq!(api.get("/api/v1/session/userinfo", &second).status, 200);
    let patch = |body: Value| {
        api.send(
            "PATCH",
            "/api/v1/accounts/ci",
            Some(&admin),
            &[],
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(patch(json!({"enabled": false})).status, 200);
    assert_eq!(api.get("/api/v1/session/userinfo", &second).status, 401);
    assert_eq!(patch(json!({"enabled": true})).status, 200);
    assert_eq!(api.get("/api/v1/session/userinfo", &second).status, 200);
    assert_eq!(patch(json!({"capabilities": ["login"]})).status, 200);
    assert_eq!(api.get("/api/v1/session/userinfo", &second).status, 401);
    // Without the capability, no new key.
    assert_eq!(
        api.post("/api/v1/accounts/ci/tokens", Some(&admin), &json!({}))
            .status,
        409
    );
    // A login-only account without a password cannot log in.
    let r = api.post(
        "/api/v1/session",
        None,
        &json!({"username": "ci", "password": "whatever1"}),
    );
    assert_eq!(r.status, 401);
    // Bad expiries.
    assert_eq!(patch(json!({"capabilities": ["apiKey"]})).status, 200);
    for bad in [
        json!({"expiresIn": -5}),
        json!({"expiresIn": "soon"}),
        json!({"expiresIn": [1]}),
    ] {
        let r = api.post("/api/v1/accounts/ci/tokens", Some(&admin), &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    assert!(api.process.logs().contains("\"action\":\"create-token\""));

    // A deleted account's tokens stay dead when an account of the same name is created again.
    let temp = json!({"name": "temp", "capabilities": ["login"], "password": "temp-password"});
    assert_eq!(
        api.post("/api/v1/accounts", Some(&admin), &temp).status,
        201
    );
    let old = api.login("temp", "temp-password");
    assert_eq!(
        api.send("DELETE", "/api/v1/accounts/temp", Some(&admin), &[], b"")
            .status,
        204
    );
    assert_eq!(api.get("/api/v1/session/userinfo", &old).status, 401);
    assert_eq!(
        api.post("/api/v1/accounts", Some(&admin), &temp).status,
        201
    );
    assert_eq!(api.get("/api/v1/session/userinfo", &old).status, 401);
    let new = api.login("temp", "temp-password");
    assert_eq!(api.get("/api/v1/session/userinfo", &new).status, 200);
}
