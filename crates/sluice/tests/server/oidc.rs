//! SSO: ID tokens from a real JWKS endpoint (an HTTP server in this test), ES256 and RS256,
//! key rotation, and the algorithm-confusion attacks.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::harness::{Api, fixture, pki};

const AUDIENCE: &str = "sluice-cli";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Serves `/.well-known/openid-configuration` and `/jwks` from `keys`.
fn jwks_server(keys: Arc<Mutex<Value>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let issuer = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
            }
            let body = if line.contains("openid-configuration") {
                json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")}).to_string()
            } else {
                keys.lock().expect("keys").to_string()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

struct EcKey {
    pem: String,
    jwk: Value,
    public_pem: String,
}

fn ec_key(kid: &str) -> EcKey {
    let pair = rcgen::KeyPair::generate().expect("key");
    let raw = pair.public_key_raw();
    assert_eq!(raw.len(), 65);
    EcKey {
        pem: pair.serialize_pem(),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..])}),
        public_pem: pair.public_key_pem(),
    }
}

fn rsa_key(dir: &std::path::Path, kid: &str) -> (String, Value) {
    let path = dir.join(format!("{kid}.pem"));
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&path)
        .status()
        .expect("openssl genpkey");
    assert!(ok.success());
    let out = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&path)
        .output()
        .expect("openssl rsa");
    let modulus = String::from_utf8_lossy(&out.stdout);
    let hex_n = modulus.trim().trim_start_matches("Modulus=");
    let n = hex::decode(hex_n).expect("modulus hex");
    (
        std::fs::read_to_string(&path).expect("pem"),
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB"}),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

fn id_token(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).expect("encode")
}

#[test]
fn id_tokens_are_verified_against_the_issuers_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("local");
    fixture(&dir);
    let first = ec_key("k1");
    let keys = Arc::new(Mutex::new(json!({"keys": [first.jwk]})));
    let issuer = jwks_server(Arc::clone(&keys));
    let api = Api::start(
        &dir,
        &pki(tmp.path(), "api"),
        &[
            "--oidc-issuer",
            &issuer,
            "--oidc-client-id",
            AUDIENCE,
            "--oidc-key-refresh-interval",
            "0s",
        ],
    );
    let claims = |iss: &str, aud: &str, nbf: i64, exp: i64| {
        json!({"iss": iss, "aud": aud, "sub": "u-123", "email": "dana@example.com",
               "groups": ["shop-ci", "staff", "admin", "role:admin", "proj:bank:ops"],
               "iat": now(), "nbf": nbf, "exp": exp})
    };
    let k1 = EncodingKey::from_ec_pem(first.pem.as_bytes()).expect("ec key");
    let good = id_token(
        Algorithm::ES256,
        "k1",
        &k1,
        &claims(&issuer, AUDIENCE, now(), now() + 600),
    );
    let me = api.get("/api/v1/session/userinfo", &good);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], "dana@example.com");
    // Groups that name a local account or a built-in role are dropped: the provider cannot
    // grant `admin`.
    assert_eq!(me.body["groups"], json!(["shop-ci", "staff"]));
    assert_eq!(api.get("/api/v1/accounts", &good).body["items"], json!([]));
    assert!(api.process.logged(3, Some(290), "OIDC group ignored"));
    // The groups claim feeds RBAC: shop-ci is bound to project shop's ci role.
    let list = api.get("/api/v1/stagesets", &good);
    assert_eq!(
        list.body["items"].as_array().map(Vec::len),
        Some(3),
        "{}",
        list.text
    );
    // OIDC tokens are revoked at the provider, not here.
    assert_eq!(
        api.send("DELETE", "/api/v1/session", Some(&good), &[], b"")
            .status,
        400
    );

    let header_payload = |header: Value, claims: &Value| {
        format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        )
    };
    let fine = claims(&issuer, AUDIENCE, now(), now() + 600);
    let none = format!(
        "{}.",
        header_payload(json!({"alg": "none", "kid": "k1"}), &fine)
    );
    // The classic confusion: HS256 with the provider's public key as the HMAC secret.
    let hs_public = id_token(
        Algorithm::HS256,
        "k1",
        &EncodingKey::from_secret(first.public_pem.as_bytes()),
        &fine,
    );
    let stranger = ec_key("k1");
    let forged = id_token(
        Algorithm::ES256,
        "k1",
        &EncodingKey::from_ec_pem(stranger.pem.as_bytes()).expect("key"),
        &fine,
    );
    let cases = [
        ("alg none", none),
        ("HS256 with the public key", hs_public),
        ("signed by another key", forged),
        (
            "wrong audience",
            id_token(
                Algorithm::ES256,
                "k1",
                &k1,
                &claims(&issuer, "someone-else", now(), now() + 600),
            ),
        ),
        (
            "wrong issuer",
            id_token(
                Algorithm::ES256,
                "k1",
                &k1,
                &claims("https://evil.example", AUDIENCE, now(), now() + 600),
            ),
        ),
        (
            "expired",
            id_token(
                Algorithm::ES256,
                "k1",
                &k1,
                &claims(&issuer, AUDIENCE, now() - 7200, now() - 3600),
            ),
        ),
        (
            "not yet valid",
            id_token(
                Algorithm::ES256,
                "k1",
                &k1,
                &claims(&issuer, AUDIENCE, now() + 3600, now() + 7200),
            ),
        ),
        (
            "unknown key id",
            id_token(Algorithm::ES256, "k9", &k1, &fine),
        ),
        (
            "a subject naming the local admin",
            id_token(
                Algorithm::ES256,
                "k1",
                &k1,
                &json!({"iss": issuer, "aud": AUDIENCE, "sub": "admin", "iat": now(), "exp": now() + 600}),
            ),
        ),
    ];
    for (name, token) in &cases {
        let r = api.get("/api/v1/stagesets", token);
        assert_eq!(r.status, 401, "{name} accepted: {}", r.text);
    }

    // Key rotation: the provider now signs with k2 (RS256); no restart needed.
    let (rsa_pem, rsa_jwk) = rsa_key(tmp.path(), "k2");
    *keys.lock().expect("keys") = json!({"keys": [rsa_jwk]});
    let k2 = EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).expect("rsa key");
    let rotated = id_token(Algorithm::RS256, "k2", &k2, &fine);
    let r = api.get("/api/v1/session/userinfo", &rotated);
    assert_eq!(r.status, 200, "{}", r.text);
    // An RS256 key does not verify an ES256-labelled token, whatever the kid says.
    let mislabeled = format!(
        "{}.{}",
        header_payload(json!({"alg": "ES256", "kid": "k2"}), &fine),
        rotated.rsplit('.').next().unwrap_or_default()
    );
    assert_eq!(api.get("/api/v1/stagesets", &mislabeled).status, 401);
    assert!(api.process.logged(3, Some(347), "malformed or forged"));
}
