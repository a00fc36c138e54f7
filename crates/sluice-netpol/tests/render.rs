//! Rendering the traffic model: determinism, semantics (the kubernetes output is evaluated with
//! the engine's own evaluator), per-engine shapes, and clear errors for what an engine cannot
//! express.

use serde_json::Value;
use sluice_netpol::docs::parse_text;
use sluice_netpol::model::TrafficModel;
use sluice_netpol::render::{Engine, render, render_yaml};
use sluice_netpol::report::resolve_flow;
use sluice_netpol::{Cluster, Evaluator, PolicySet};

const MODEL: &str = "
workloads:
- name: web
  namespace: shop
  podSelector: {app: web}
  ingress:
  - from: [{pods: {app: lb}, namespaces: {team: edge}}, {cidr: 192.168.0.0/16, except: [192.168.9.0/24]}]
    ports: [{port: 8080}, {port: 53, protocol: UDP}]
  egress:
  - to: [{pods: {app: db}}]
    ports: [{port: 5432}]
  - to: [{namespaces: {kubernetes.io/metadata.name: kube-system}, pods: {k8s-app: kube-dns}}]
    ports: [{port: 53, protocol: UDP}]
- name: db
  namespace: shop
  podSelector: {app: db}
  ingress:
  - from: [{pods: {app: web}}]
    ports: [{port: pg}]
";

const CLUSTER: &str = r#"{
  "namespaces": {"shop": {}, "edge": {"labels": {"team": "edge"}}, "kube-system": {}},
  "pods": [
    {"namespace": "shop", "name": "web", "labels": {"app": "web"}, "ip": "10.0.0.1"},
    {"namespace": "shop", "name": "db", "labels": {"app": "db"}, "ip": "10.0.0.2", "ports": [{"name": "pg", "port": 5432}]},
    {"namespace": "shop", "name": "cache", "labels": {"app": "cache"}, "ip": "10.0.0.3"},
    {"namespace": "edge", "name": "lb", "labels": {"app": "lb"}, "ip": "10.0.1.1"},
    {"namespace": "kube-system", "name": "dns", "labels": {"k8s-app": "kube-dns"}, "ip": "10.0.2.1"}
  ]}"#;

fn model(text: &str) -> TrafficModel {
    TrafficModel::from_text(text, "model.yaml").expect("model")
}

#[test]
fn output_is_deterministic_and_survives_a_model_round_trip() {
    let m = model(MODEL);
    for engine in [Engine::Kubernetes, Engine::Cilium, Engine::Calico] {
        let a = render_yaml(&m, engine).expect("render");
        let b = render_yaml(&model(MODEL), engine).expect("render");
        assert_eq!(a, b, "{engine}");
        let round = serde_json::to_string(&m).expect("serialize");
        assert_eq!(
            render_yaml(&model(&round), engine).expect("render"),
            a,
            "{engine}"
        );
    }
}

#[test]
fn kubernetes_output_allows_exactly_the_modelled_flows() {
    let mut m = model(MODEL);
    m.default_deny.enabled = true;
    let yaml = render_yaml(&m, Engine::Kubernetes).expect("render");
    let mut docs = Vec::new();
    parse_text(&yaml, "rendered", &mut docs).expect("parse");
    let policies = PolicySet::from_documents(&docs, true).expect("valid NetworkPolicies");
    let cluster = Cluster::from_json(CLUSTER, "cluster").expect("cluster");
    let eval = Evaluator::new(&cluster, &policies);
    let allowed = |from: &str, to: &str, port: u32, proto: &str| {
        eval.evaluate(&resolve_flow(&cluster, from, to, port, Some(proto)).expect("flow"))
            .allowed
    };
    assert!(allowed("edge/lb", "shop/web", 8080, "TCP"));
    assert!(allowed("edge/lb", "shop/web", 53, "UDP"));
    assert!(!allowed("edge/lb", "shop/web", 8081, "TCP"));
    assert!(allowed("192.168.1.1", "shop/web", 8080, "TCP"));
    assert!(!allowed("192.168.9.1", "shop/web", 8080, "TCP"), "except");
    assert!(
        allowed("shop/web", "shop/db", 5432, "TCP"),
        "egress rule + db ingress on pg"
    );
    assert!(!allowed("shop/cache", "shop/db", 5432, "TCP"));
    assert!(
        !allowed("shop/web", "shop/cache", 80, "TCP"),
        "web egress is managed"
    );
    assert!(allowed("shop/web", "kube-system/dns", 53, "UDP"));
    assert!(!allowed("shop/web", "8.8.8.8", 53, "UDP"));
    assert!(
        !allowed("edge/lb", "shop/cache", 80, "TCP"),
        "default-deny covers unlisted pods"
    );
    assert!(
        allowed("shop/cache", "edge/lb", 80, "TCP"),
        "egress stays open without --deny-egress"
    );
}

#[test]
fn fqdn_egress_renders_for_cilium_with_dns_visibility_and_fails_elsewhere() {
    let text = "workloads:\n- name: pay\n  namespace: shop\n  podSelector: {app: pay}\n  egress:\n  - to: [{fqdn: api.stripe.com}, {fqdn: '*.s3.amazonaws.com'}]\n    ports: [{port: 443}]\n";
    let m = model(text);
    let objects = render(&m, Engine::Cilium).expect("cilium");
    let egress = &objects[0]["spec"]["egress"];
    assert_eq!(
        egress[0]["toPorts"][0]["rules"]["dns"][0]["matchPattern"], "*",
        "DNS visibility first"
    );
    assert_eq!(egress[1]["toFQDNs"][0]["matchName"], "api.stripe.com");
    assert_eq!(
        egress[1]["toFQDNs"][1]["matchPattern"],
        "*.s3.amazonaws.com"
    );
    assert_eq!(egress[1]["toPorts"][0]["ports"][0]["port"], "443");
    for engine in [
        Engine::Kubernetes,
        Engine::Calico,
        Engine::ClusterNetworkPolicy,
    ] {
        let err = render(&m, engine)
            .expect_err("cannot express FQDN")
            .to_string();
        assert!(
            err.contains("api.stripe.com")
                && err.contains("shop/pay")
                && err.contains("egress rule 0"),
            "{err}"
        );
    }
}

#[test]
fn calico_orders_layers_and_splits_rules_by_protocol() {
    let mut m = model(MODEL);
    m.default_deny.enabled = true;
    m.default_deny.egress = true;
    let objects = render(&m, Engine::Calico).expect("calico");
    assert_eq!(objects[0]["metadata"]["name"], "default-deny");
    assert_eq!(objects[0]["spec"]["order"], 2000);
    assert_eq!(objects[0]["spec"]["selector"], "all()");
    assert_eq!(objects[0]["spec"]["egress"][0]["action"], "Deny");
    let web = &objects[1]["spec"];
    assert_eq!(web["order"], 500);
    assert_eq!(web["selector"], "app == 'web'");
    let ingress = web["ingress"].as_array().expect("rules");
    // Two peers times two protocols.
    assert_eq!(ingress.len(), 4);
    assert_eq!(ingress[0]["protocol"], "TCP");
    assert_eq!(ingress[0]["source"]["namespaceSelector"], "team == 'edge'");
    assert_eq!(ingress[1]["protocol"], "UDP");
    assert_eq!(ingress[2]["source"]["notNets"][0], "192.168.9.0/24");
    m.default_deny.order = 400;
    let err = render(&m, Engine::Calico)
        .expect_err("deny above allow")
        .to_string();
    assert!(err.contains("must come after the allowlists"), "{err}");
}

#[test]
fn cluster_network_policy_uses_the_baseline_tier_and_refuses_what_it_cannot_say() {
    let text = "defaultDeny: {enabled: true}\nworkloads:\n- name: web\n  namespace: shop\n  podSelector: {app: web}\n  ingress:\n  - from: [{pods: {app: lb}}]\n    ports: [{port: 8080}, {port: 9000, endPort: 9100}, {port: http}]\n  egress:\n  - to: [{cidr: 10.96.0.1/32}]\n    ports: [{port: 443}]\n";
    let objects = render(&model(text), Engine::ClusterNetworkPolicy).expect("cnp");
    let deny: &Value = &objects[0];
    assert_eq!(deny["metadata"]["name"], "default-deny-shop");
    assert_eq!(deny["spec"]["tier"], "Baseline");
    assert_eq!(
        deny["spec"]["priority"], 1000,
        "2000 is capped at the API's 1000"
    );
    assert!(
        deny["metadata"].get("namespace").is_none(),
        "cluster-scoped"
    );
    let web = &objects[1]["spec"];
    assert_eq!(web["priority"], 500);
    assert_eq!(
        web["subject"]["pods"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "shop"
    );
    assert_eq!(web["ingress"][0]["action"], "Accept");
    assert_eq!(
        web["ingress"][0]["from"][0]["pods"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "shop"
    );
    assert_eq!(
        web["ingress"][0]["protocols"][1]["tcp"]["destinationPort"]["range"]["end"],
        9100
    );
    assert_eq!(
        web["ingress"][0]["protocols"][2]["destinationNamedPort"],
        "http"
    );
    assert_eq!(web["egress"][0]["to"][0]["networks"][0], "10.96.0.1/32");
    let except = text.replace(
        "cidr: 10.96.0.1/32",
        "cidr: 10.0.0.0/8, except: [10.1.0.0/16]",
    );
    let err = render(&model(&except), Engine::ClusterNetworkPolicy)
        .expect_err("except")
        .to_string();
    assert!(err.contains("except") && err.contains("shop/web"), "{err}");
}

#[test]
fn bad_models_name_the_field() {
    let cases = [
        (
            "workloads:\n- {name: web, namespace: shop, podSelector: {}, ingres: []}\n",
            "ingres",
        ),
        (
            "workloads:\n- {name: Web, namespace: shop, podSelector: {}}\n",
            "workloads[0].name",
        ),
        (
            "workloads:\n- {name: web, namespace: shop, podSelector: {}, ingress: [{from: [{cidr: 10.0.0.0/33}]}]}\n",
            "workloads[0].ingress[0].from[0].cidr",
        ),
        (
            "workloads:\n- {name: web, namespace: shop, podSelector: {}, ingress: [{from: [{cidr: 10.0.0.0/16, except: [10.1.0.0/24]}]}]}\n",
            "except[0]",
        ),
        (
            "workloads:\n- {name: web, namespace: shop, podSelector: {}, ingress: [{from: [{fqdn: a.example.com}]}]}\n",
            "fqdn",
        ),
        (
            "workloads:\n- {name: web, namespace: shop, podSelector: {}, egress: [{to: [{pods: {a: b}, cidr: 10.0.0.0/8}]}]}\n",
            "workloads[0].egress[0].to[0]",
        ),
        (
            "workloads:\n- {name: web, namespace: shop, podSelector: {}, egress: [{ports: [{port: 90, endPort: 80}]}]}\n",
            "endPort",
        ),
    ];
    for (text, field) in cases {
        let err = TrafficModel::from_text(text, "model.yaml")
            .expect_err(text)
            .to_string();
        assert!(
            err.contains("model.yaml") && err.contains(field),
            "{field}: {err}"
        );
    }
}
