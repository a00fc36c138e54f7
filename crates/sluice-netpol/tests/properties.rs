//! Property tests: the fast matrix equals pairwise evaluation on random clusters and policy
//! sets, and the parsers never panic on arbitrary or mutated input.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sluice_netpol::docs::parse_text;
use sluice_netpol::matrix::naive_summary;
use sluice_netpol::{Cluster, Endpoint, Evaluator, Flow, PolicySet, Protocol, Reachability};

const KEYS: [&str; 3] = ["a", "b", "c"];
const VALUES: [&str; 2] = ["x", "y"];
const NAMESPACES: [&str; 4] = ["n0", "n1", "n2", "n3"];

fn labels(rng: &mut ChaCha8Rng) -> Value {
    let mut map = serde_json::Map::new();
    for key in KEYS {
        if rng.random_bool(0.5) {
            map.insert(key.into(), json!(VALUES[rng.random_range(0..2)]));
        }
    }
    Value::Object(map)
}

fn selector(rng: &mut ChaCha8Rng) -> Value {
    let mut sel = serde_json::Map::new();
    if rng.random_bool(0.5) {
        let mut ml = serde_json::Map::new();
        ml.insert(
            KEYS[rng.random_range(0..3)].into(),
            json!(VALUES[rng.random_range(0..2)]),
        );
        sel.insert("matchLabels".into(), Value::Object(ml));
    }
    if rng.random_bool(0.3) {
        let key = KEYS[rng.random_range(0..3)];
        let expr = match rng.random_range(0..4) {
            0 => json!({"key": key, "operator": "In", "values": ["x"]}),
            1 => json!({"key": key, "operator": "NotIn", "values": ["y"]}),
            2 => json!({"key": key, "operator": "Exists"}),
            _ => json!({"key": key, "operator": "DoesNotExist"}),
        };
        sel.insert("matchExpressions".into(), json!([expr]));
    }
    Value::Object(sel)
}

fn peer(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..4) {
        0 => json!({"podSelector": selector(rng)}),
        1 => json!({"namespaceSelector": selector(rng)}),
        2 => json!({"podSelector": selector(rng), "namespaceSelector": selector(rng)}),
        _ => {
            let third = rng.random_range(0..4);
            let mut block = json!({"cidr": format!("10.0.{third}.0/24")});
            if rng.random_bool(0.5) {
                block["cidr"] = json!("10.0.0.0/16");
                block["except"] = json!([format!("10.0.{third}.0/25")]);
            }
            json!({"ipBlock": block})
        }
    }
}

fn port(rng: &mut ChaCha8Rng) -> Value {
    let protocol = ["TCP", "UDP"][rng.random_range(0..2)];
    match rng.random_range(0..4) {
        0 => {
            let number = [53, 80, 8080][rng.random_range(0..3)];
            json!({"port": number, "protocol": protocol})
        }
        1 => {
            let name = ["http", "dns"][rng.random_range(0..2)];
            json!({"port": name, "protocol": protocol})
        }
        2 => json!({"port": 50, "endPort": 90, "protocol": protocol}),
        _ => json!({"protocol": protocol}),
    }
}

fn rule(rng: &mut ChaCha8Rng, peers_key: &str) -> Value {
    let mut r = serde_json::Map::new();
    if rng.random_bool(0.8) {
        let n = rng.random_range(0..3);
        r.insert(
            peers_key.into(),
            Value::Array((0..n).map(|_| peer(rng)).collect()),
        );
    }
    if rng.random_bool(0.6) {
        let n = rng.random_range(1..3);
        r.insert(
            "ports".into(),
            Value::Array((0..n).map(|_| port(rng)).collect()),
        );
    }
    Value::Object(r)
}

fn random_world(seed: u64) -> (Cluster, PolicySet) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut namespaces = serde_json::Map::new();
    for ns in NAMESPACES {
        namespaces.insert(ns.into(), json!({"labels": labels(&mut rng)}));
    }
    let pods: Vec<Value> = (0..rng.random_range(0..14))
        .map(|i| {
            let mut pod = json!({
                "namespace": NAMESPACES[rng.random_range(0..4)],
                "name": format!("p{i}"),
                "labels": labels(&mut rng),
                "ip": format!("10.0.{}.{}", rng.random_range(0..4), rng.random_range(1..200)),
            });
            if rng.random_bool(0.7) {
                let (name, number, protocol) = [
                    ("http", 80, "TCP"),
                    ("http", 8080, "TCP"),
                    ("dns", 53, "UDP"),
                ][rng.random_range(0..3)];
                pod["ports"] = json!([{"name": name, "port": number, "protocol": protocol}]);
            }
            pod
        })
        .collect();
    let cluster_json = json!({"namespaces": namespaces, "pods": pods}).to_string();
    let cluster = Cluster::from_json(&cluster_json, "random").expect("valid cluster");
    let policies: Vec<Value> = (0..rng.random_range(0..7))
        .map(|i| {
            let mut spec = serde_json::Map::new();
            spec.insert("podSelector".into(), selector(&mut rng));
            if rng.random_bool(0.5) {
                let types = [vec!["Ingress"], vec!["Egress"], vec!["Ingress", "Egress"]]
                    [rng.random_range(0..3)]
                .clone();
                spec.insert("policyTypes".into(), json!(types));
            }
            if rng.random_bool(0.7) {
                let n = rng.random_range(0..3);
                spec.insert("ingress".into(), Value::Array((0..n).map(|_| rule(&mut rng, "from")).collect()));
            }
            if rng.random_bool(0.6) {
                let n = rng.random_range(0..3);
                spec.insert("egress".into(), Value::Array((0..n).map(|_| rule(&mut rng, "to")).collect()));
            }
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": format!("np{i}"), "namespace": NAMESPACES[rng.random_range(0..4)]},
                "spec": spec,
            })
        })
        .collect();
    let mut docs = Vec::new();
    parse_text(&Value::Array(policies).to_string(), "random", &mut docs).expect("parses");
    let set = PolicySet::from_documents(&docs, true).expect("valid policies");
    (cluster, set)
}

#[test]
fn matrix_equals_pairwise_evaluation_on_random_worlds() {
    let rounds: u64 = std::env::var("SLUICE_NETPOL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut nontrivial = 0;
    for seed in 0..rounds {
        let (cluster, policies) = random_world(seed);
        let eval = Evaluator::new(&cluster, &policies);
        for (port, protocol) in [
            (80, Protocol::Tcp),
            (8080, Protocol::Tcp),
            (53, Protocol::Udp),
        ] {
            let reach = Reachability::compute(&cluster, &policies, port, protocol);
            let naive = naive_summary(&cluster, &policies, port, protocol);
            assert_eq!(reach.summary(), naive, "seed {seed} port {port}");
            for s in 0..cluster.pods.len() {
                for d in 0..cluster.pods.len() {
                    let flow = Flow {
                        from: Endpoint::Pod(s),
                        to: Endpoint::Pod(d),
                        port,
                        protocol,
                    };
                    assert_eq!(
                        reach.allowed(s, d),
                        eval.allowed(&flow),
                        "seed {seed} {s}->{d}"
                    );
                }
            }
            if naive.allowed != 0 && naive.denied != 0 {
                nontrivial += 1;
            }
        }
    }
    // The generator must produce worlds where policies actually decide something.
    assert!(nontrivial > rounds / 2, "only {nontrivial} mixed worlds");
}

const VALID: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: n}
spec:
  podSelector: {matchExpressions: [{key: a, operator: In, values: [x]}]}
  ingress:
  - from: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}, {namespaceSelector: {}}]
    ports: [{port: 80, endPort: 90}, {port: http, protocol: UDP}]
";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn policy_parser_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let mut docs = Vec::new();
        if parse_text(&text, "fuzz", &mut docs).is_ok() {
            let _ = PolicySet::from_documents(&docs, true);
            let _ = PolicySet::from_documents(&docs, false);
        }
    }

    #[test]
    fn policy_parser_never_panics_on_mutated_policies(
        at in 0usize..VALID.len(),
        cut in 0usize..8,
        insert in "[a-zA-Z0-9:{}\\[\\]/ ,.-]{0,6}",
    ) {
        let mut text = VALID.to_owned();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(text.len());
        text.replace_range(at..end, &insert);
        let mut docs = Vec::new();
        if parse_text(&text, "fuzz", &mut docs).is_ok() {
            let _ = PolicySet::from_documents(&docs, true);
        }
    }

    #[test]
    fn cluster_parser_never_panics(text in "\\PC{0,120}") {
        let _ = Cluster::from_json(&text, "fuzz");
    }
}
