//! `sluice netpol` end to end through the binary: the JSON contract, exit codes, prose.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("run sluice")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = Self { dir };
        f.write(
            "cluster.json",
            r#"{"namespaces": {"shop": {"labels": {"team": "shop"}}, "ops": {}},
                "pods": [
                  {"namespace": "shop", "name": "web", "labels": {"app": "web"}, "ip": "10.0.0.1"},
                  {"namespace": "shop", "name": "db", "labels": {"app": "db"}, "ip": "10.0.0.3",
                   "ports": [{"name": "pg", "port": 5432}]},
                  {"namespace": "ops", "name": "prom", "labels": {"app": "prom"}, "ip": "10.0.1.1"}
                ]}"#,
        );
        f.write(
            "policies/deny.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n",
        );
        f.write(
            "policies/db.json",
            r#"{"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "db", "namespace": "shop"},
                 "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                          "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                                       "ports": [{"port": "pg"}]}]}}]}"#,
        );
        f.write(
            "probes.json",
            r#"[{"from": "shop/web", "to": "shop/db", "port": 5432, "protocol": "TCP"},
                {"from": "ops/prom", "to": "shop/db", "port": 5432},
                {"from": "203.0.113.9", "to": "ops/prom", "port": 80, "protocol": "UDP"}]"#,
        );
        f
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

#[test]
fn check_with_probes_follows_the_json_contract() {
    let f = Fixture::new();
    let out = sluice(&[
        "netpol",
        "check",
        "--cluster",
        &f.path("cluster.json"),
        "--policies",
        &f.path("policies"),
        "--probes",
        &f.path("probes.json"),
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let results: Vec<Value> = serde_json::from_str(&stdout(&out)).expect("json array");
    assert_eq!(results.len(), 3);
    let first = &results[0];
    assert_eq!(first["from"], "shop/web");
    assert_eq!(first["to"], "shop/db");
    assert_eq!(first["port"], 5432);
    assert_eq!(first["protocol"], "TCP");
    assert_eq!(first["allowed"], true);
    assert_eq!(first["egress"]["isolated"], false);
    assert_eq!(first["ingress"]["isolated"], true);
    assert_eq!(first["ingress"]["allowedBy"][0]["policy"], "shop/db");
    assert_eq!(first["ingress"]["allowedBy"][0]["rule"], 0);
    let second = &results[1];
    assert_eq!(second["allowed"], false);
    assert_eq!(second["ingress"]["allowedBy"], Value::Array(vec![]));
    assert_eq!(
        second["ingress"]["policies"],
        serde_json::json!(["shop/db", "shop/deny"]),
        "directory files in name order"
    );
    let third = &results[2];
    assert_eq!(third["allowed"], true);
    assert_eq!(third["protocol"], "UDP");
    assert_eq!(
        third["egress"]["pod"],
        Value::Null,
        "an external source has no egress policy"
    );
}

#[test]
fn summary_prints_exactly_the_counts() {
    let f = Fixture::new();
    let out = sluice(&[
        "netpol",
        "check",
        "--cluster",
        &f.path("cluster.json"),
        "--policies",
        &f.path("policies/deny.yaml"),
        &f.path("policies/db.json"),
        "--port",
        "5432",
        "--summary",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: Value = serde_json::from_str(&stdout(&out)).expect("json");
    // 3 pods: 6 ordered pairs. Into shop/*: only web -> db on the named port survives.
    assert_eq!(
        value,
        serde_json::json!({"pairs": 6, "allowed": 3, "denied": 3})
    );
    let table = sluice(&[
        "netpol",
        "check",
        "--cluster",
        &f.path("cluster.json"),
        "--policies",
        &f.path("policies"),
        "--port",
        "5432",
    ]);
    assert!(table.status.success());
    let text = stdout(&table);
    assert!(
        text.contains("shop/web") && text.contains("3 allowed, 3 blocked"),
        "{text}"
    );
    let matrix = sluice(&[
        "netpol",
        "check",
        "--cluster",
        &f.path("cluster.json"),
        "--policies",
        &f.path("policies"),
        "--port",
        "5432",
        "-o",
        "json",
    ]);
    let value: Value = serde_json::from_str(&stdout(&matrix)).expect("json");
    assert_eq!(
        value["pods"],
        serde_json::json!(["shop/web", "shop/db", "ops/prom"])
    );
    assert_eq!(value["allowed"][0][1], true);
    assert_eq!(value["allowed"][2][1], false);
}

#[test]
fn explain_tells_what_blocked_the_flow_and_how_to_open_it() {
    let f = Fixture::new();
    let out = sluice(&[
        "netpol",
        "explain",
        "--cluster",
        &f.path("cluster.json"),
        "--policies",
        &f.path("policies"),
        "--from",
        "ops/prom",
        "--to",
        "shop/db",
        "--port",
        "5432",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("ops/prom -> shop/db on TCP/5432: BLOCKED"),
        "{text}"
    );
    assert!(text.contains("shop/deny"), "{text}");
    assert!(text.contains("ops/prom is not one of its peers"), "{text}");
    assert!(
        text.contains("kubernetes.io/metadata.name: ops"),
        "suggests a cross-namespace peer: {text}"
    );
}

#[test]
fn bad_input_exits_2_naming_the_file_and_field() {
    let f = Fixture::new();
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "bad-cidr.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: shop}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{ipBlock: {cidr: 10.0.0.0/40}}]\n",
            "spec.ingress[0].from[0].ipBlock.cidr",
        ),
        (
            "typo.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: shop}\nspec:\n  podSelector: {matchLabel: {a: b}}\n",
            "matchLabel",
        ),
        (
            "op.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}\n",
            "matchExpressions[0].operator",
        ),
        (
            "kind.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "ConfigMap",
        ),
        ("broken.yaml", "a: [unclosed\n", "broken.yaml"),
        (
            "proto.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 80, protocol: ICMP}]}]\n",
            "ICMP",
        ),
    ];
    for (name, text, expect) in cases {
        let path = f.write(&format!("bad/{name}"), text);
        let out = sluice(&[
            "netpol",
            "check",
            "--cluster",
            &f.path("cluster.json"),
            "--policies",
            path.to_str().expect("utf-8"),
            "--port",
            "80",
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let probes = f.write(
        "bad-probes.json",
        r#"[{"from": "shop/nope", "to": "shop/db", "port": 1}]"#,
    );
    let out = sluice(&[
        "netpol",
        "check",
        "--cluster",
        &f.path("cluster.json"),
        "--probes",
        probes.to_str().expect("utf-8"),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("shop/nope"), "{}", stderr(&out));
    let cluster = f.write(
        "bad-cluster.json",
        r#"{"pods": [{"namespace": "a", "name": "b", "ip": "10.0.0.300"}]}"#,
    );
    let out = sluice(&[
        "netpol",
        "check",
        "--cluster",
        cluster.to_str().expect("utf-8"),
        "--port",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("pods[0].ip"), "{}", stderr(&out));
    assert!(f.root().exists());
}

#[test]
fn synth_is_deterministic_and_its_output_evaluates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, seed: &str| {
        let out = dir.path().join(name);
        let run = sluice(&[
            "netpol",
            "synth",
            "--namespaces",
            "5",
            "--pods",
            "200",
            "--policies",
            "30",
            "--seed",
            seed,
            "--out",
            out.to_str().expect("utf-8"),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        out
    };
    let (a, b, c) = (write("a", "3"), write("b", "3"), write("c", "4"));
    let read = |dir: &Path, file: &str| std::fs::read(dir.join(file)).expect("read");
    assert_eq!(read(&a, "cluster.json"), read(&b, "cluster.json"));
    assert_eq!(
        read(&a, "policies/ns-0001.yaml"),
        read(&b, "policies/ns-0001.yaml")
    );
    assert_ne!(read(&a, "cluster.json"), read(&c, "cluster.json"));
    let out = sluice(&[
        "netpol",
        "check",
        "--cluster",
        a.join("cluster.json").to_str().expect("utf-8"),
        "--policies",
        a.join("policies").to_str().expect("utf-8"),
        "--port",
        "8080",
        "--summary",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["pairs"], 200 * 199);
    let allowed = v["allowed"].as_u64().expect("count");
    assert!(
        allowed > 0 && allowed < 200 * 199,
        "policies decide something: {v}"
    );
}

#[test]
fn lint_exits_1_on_errors_and_0_on_warnings_only() {
    let f = Fixture::new();
    let warn_only = sluice(&[
        "netpol",
        "lint",
        &f.path("policies"),
        "--cluster",
        &f.path("cluster.json"),
    ]);
    assert_eq!(
        warn_only.status.code(),
        Some(0),
        "{}{}",
        stdout(&warn_only),
        stderr(&warn_only)
    );
    assert!(
        stdout(&warn_only).contains("no-default-deny"),
        "ops has none: {}",
        stdout(&warn_only)
    );
    let bad = f.write(
        "bad-egress.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: e, namespace: shop}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n",
    );
    let out = sluice(&["netpol", "lint", bad.to_str().expect("utf-8"), "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings: Vec<Value> = serde_json::from_str(&stdout(&out)).expect("json");
    assert!(
        findings
            .iter()
            .any(|x| x["code"] == "egress-without-dns" && x["level"] == "error")
    );
}

#[test]
fn diff_reports_what_a_change_would_block() {
    let f = Fixture::new();
    let out = sluice(&[
        "netpol",
        "diff",
        "--cluster",
        &f.path("cluster.json"),
        "--before",
        &f.path("policies/db.json"),
        "--after",
        &f.path("policies"),
        "--port",
        "5432",
        "--fail-on-blocked",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    // Adding the shop default-deny blocks prom -> web and db -> web (and prom -> db was
    // already blocked by the db policy).
    assert!(text.contains("Newly BLOCKED (2)"), "{text}");
    assert!(text.contains("ops/prom -> shop/web TCP/5432"), "{text}");
    assert!(text.contains("Newly ALLOWED (0)"), "{text}");
}
