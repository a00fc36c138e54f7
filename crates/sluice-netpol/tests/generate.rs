//! Generating least-privilege policies from the example manifests, then proving with the
//! evaluator that exactly the needed flows get through.

use std::path::PathBuf;

use sluice_netpol::docs::{parse_text, read_documents};
use sluice_netpol::generate::{GenerateOptions, TrafficFile, generate};
use sluice_netpol::labels::Labels;
use sluice_netpol::model::PortValue;
use sluice_netpol::render::{Engine, render_yaml};
use sluice_netpol::report::resolve_flow;
use sluice_netpol::workload::Inventory;
use sluice_netpol::{Evaluator, PolicySet};

fn example(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/netpol")
        .join(path)
}

fn inventory() -> Inventory {
    Inventory::from_documents(&read_documents(&[example("manifests")]).expect("read"))
        .expect("inventory")
}

fn traffic() -> TrafficFile {
    let text = std::fs::read_to_string(example("traffic.yaml")).expect("traffic");
    let values = sluice_manifest::parse_documents(&text, &Default::default()).expect("yaml");
    serde_json::from_value(values[0].clone()).expect("traffic file")
}

fn options(egress: bool) -> GenerateOptions {
    GenerateOptions {
        egress,
        apiserver_cidr: Some("172.20.0.1/32".into()),
        strict_ingress: false,
        infer: true,
    }
}

#[test]
fn ingress_is_limited_to_served_ports_and_known_clients() {
    let g = generate(&inventory(), &traffic(), &options(false)).expect("generate");
    let api = g
        .model
        .workloads
        .iter()
        .find(|w| w.name == "api")
        .expect("api");
    let rules = api.ingress.as_ref().expect("ingress");
    // 9090 (Service target and declared) from report (annotation) and web (inferred from env);
    // 9100 from prometheus (traffic file).
    assert_eq!(rules.len(), 2, "{rules:#?}");
    assert_eq!(rules[0].ports[0].port, PortValue::Number(9090));
    assert!(rules[0].inferred);
    let clients: Vec<_> = rules[0]
        .from
        .iter()
        .map(|p| p.pods.clone().expect("pods")["app"].clone())
        .collect();
    assert_eq!(clients, ["report", "web"]);
    assert_eq!(rules[1].ports[0].port, PortValue::Number(9100));
    let db = g
        .model
        .workloads
        .iter()
        .find(|w| w.name == "db")
        .expect("db");
    let from = &db.ingress.as_ref().expect("ingress")[0].from[0];
    assert_eq!(
        from.namespaces.as_ref().expect("cross-namespace")["kubernetes.io/metadata.name"],
        "shop"
    );
    assert!(
        g.model.workloads.iter().all(|w| w.egress.is_none()),
        "egress is opt-in"
    );
    let explained = g
        .explanations
        .iter()
        .find(|e| e.workload == "shop/api")
        .expect("explained");
    assert!(
        explained
            .lines
            .iter()
            .any(|l| l.contains("inferred") && l.contains("API_URL")),
        "{explained:?}"
    );
}

#[test]
fn egress_always_has_dns_and_reaches_the_apiserver_only_by_cidr() {
    let g = generate(&inventory(), &traffic(), &options(true)).expect("generate");
    for w in &g.model.workloads {
        let egress = w.egress.as_ref().expect("egress managed");
        assert!(
            egress[0].to[0]
                .pods
                .as_ref()
                .is_some_and(|p| p["k8s-app"] == "kube-dns"),
            "{} lacks DNS",
            w.name
        );
    }
    let report = g
        .model
        .workloads
        .iter()
        .find(|w| w.name == "report")
        .expect("report");
    assert!(
        report
            .egress
            .as_ref()
            .expect("egress")
            .iter()
            .any(|r| r.to[0].cidr.as_deref() == Some("172.20.0.1/32"))
    );
    let err = generate(
        &inventory(),
        &traffic(),
        &GenerateOptions {
            apiserver_cidr: None,
            ..options(true)
        },
    )
    .expect_err("apiserver without CIDR")
    .to_string();
    assert!(
        err.contains("shop/report") && err.contains("--apiserver-cidr"),
        "{err}"
    );
}

#[test]
fn generated_kubernetes_policies_let_exactly_the_needed_flows_through() {
    let mut g = generate(&inventory(), &traffic(), &options(true)).expect("generate");
    g.model.default_deny.enabled = true;
    g.model.default_deny.egress = true;
    // FQDN egress cannot be NetworkPolicy; the error says so, and dropping that flow renders.
    let err = render_yaml(&g.model, Engine::Kubernetes)
        .expect_err("fqdn")
        .to_string();
    assert!(err.contains("payments.example.com"), "{err}");
    for w in &mut g.model.workloads {
        if let Some(e) = &mut w.egress {
            e.retain(|r| r.to.iter().all(|p| p.fqdn.is_none()));
        }
    }
    let yaml = render_yaml(&g.model, Engine::Kubernetes).expect("render");
    let mut docs = Vec::new();
    parse_text(&yaml, "generated", &mut docs).expect("parse");
    let policies = PolicySet::from_documents(&docs, true).expect("valid");

    let mut cluster = inventory().as_cluster();
    let labels = |k: &str, v: &str| Labels::from([(k.to_owned(), v.to_owned())]);
    cluster.add_pod(
        "ingress-nginx",
        "controller",
        labels("app.kubernetes.io/name", "ingress-nginx"),
        None,
        vec![],
    );
    cluster.add_pod(
        "kube-system",
        "coredns",
        labels("k8s-app", "kube-dns"),
        None,
        vec![],
    );
    cluster.add_pod(
        "monitoring",
        "prometheus",
        labels("app", "prometheus"),
        None,
        vec![],
    );
    let eval = Evaluator::new(&cluster, &policies);
    let allowed = |from: &str, to: &str, port: u32, proto: &str| {
        eval.evaluate(&resolve_flow(&cluster, from, to, port, Some(proto)).expect("flow"))
            .allowed
    };
    assert!(allowed(
        "ingress-nginx/controller",
        "shop/deployment-web",
        8080,
        "TCP"
    ));
    assert!(allowed(
        "shop/deployment-web",
        "shop/deployment-api",
        9090,
        "TCP"
    ));
    assert!(allowed(
        "shop/cronjob-report",
        "shop/deployment-api",
        9090,
        "TCP"
    ));
    assert!(allowed(
        "shop/deployment-api",
        "data/statefulset-db",
        5432,
        "TCP"
    ));
    assert!(allowed(
        "monitoring/prometheus",
        "shop/deployment-api",
        9100,
        "TCP"
    ));
    assert!(allowed(
        "shop/deployment-web",
        "kube-system/coredns",
        53,
        "UDP"
    ));
    assert!(allowed(
        "data/statefulset-db",
        "kube-system/coredns",
        53,
        "TCP"
    ));
    assert!(
        !allowed("shop/deployment-web", "data/statefulset-db", 5432, "TCP"),
        "web never talks to db"
    );
    assert!(!allowed(
        "monitoring/prometheus",
        "shop/deployment-api",
        9090,
        "TCP"
    ));
    assert!(!allowed(
        "ingress-nginx/controller",
        "shop/deployment-api",
        9090,
        "TCP"
    ));
    assert!(!allowed(
        "shop/deployment-api",
        "shop/deployment-web",
        8080,
        "TCP"
    ));
    assert!(!allowed("shop/deployment-web", "8.8.8.8", 443, "TCP"));
    assert!(
        allowed("shop/cronjob-report", "172.20.0.1", 6443, "TCP"),
        "apiserver by CIDR"
    );
    assert!(!allowed("shop/deployment-web", "172.20.0.1", 6443, "TCP"));
}

#[test]
fn unknown_names_in_the_traffic_file_are_errors() {
    let bad: TrafficFile = serde_json::from_value(serde_json::json!({
        "flows": [{"from": {"workload": "nope"}, "to": {"workload": "api", "port": 80}}]
    }))
    .expect("shape");
    let err = generate(&inventory(), &bad, &options(false))
        .expect_err("unknown")
        .to_string();
    assert!(err.contains("flows[0]") && err.contains("nope"), "{err}");
    let nowhere: TrafficFile = serde_json::from_value(serde_json::json!({
        "flows": [{"from": {"cidr": "10.0.0.0/8"}, "to": {"fqdn": "example.com", "port": 443}}]
    }))
    .expect("shape");
    let err = generate(&inventory(), &nowhere, &options(true))
        .expect_err("no workload end")
        .to_string();
    assert!(
        err.contains("flows[0]") && err.contains("workload"),
        "{err}"
    );
    let typo = serde_json::from_value::<TrafficFile>(
        serde_json::json!({"flows": [{"from": {"workload": "web"}, "too": {}}]}),
    );
    assert!(typo.is_err());
}
