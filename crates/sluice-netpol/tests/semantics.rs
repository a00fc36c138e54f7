//! Upstream NetworkPolicy semantics, case by case, written from the Kubernetes documentation.
//! Every case is checked three ways: the per-flow evaluator, the reachability matrix and the
//! naive pairwise count must agree.

use sluice_netpol::docs::parse_text;
use sluice_netpol::matrix::naive_summary;
use sluice_netpol::report::resolve_flow;
use sluice_netpol::{Cluster, Evaluator, PolicySet, Reachability};

const CLUSTER: &str = r#"{
  "namespaces": {
    "shop": {"labels": {"team": "shop", "env": "prod"}},
    "ops": {"labels": {"team": "ops"}},
    "dev": {"labels": {"env": "dev"}}
  },
  "pods": [
    {"namespace": "shop", "name": "web", "labels": {"app": "web", "tier": "front"}, "ip": "10.0.0.1",
     "ports": [{"name": "http", "port": 8080}]},
    {"namespace": "shop", "name": "api", "labels": {"app": "api", "tier": "back"}, "ip": "10.0.0.2",
     "ports": [{"name": "http", "port": 9090}, {"name": "dns", "port": 53, "protocol": "UDP"}]},
    {"namespace": "shop", "name": "db", "labels": {"app": "db", "tier": "back"}, "ip": "10.0.0.3",
     "ports": [{"name": "pg", "port": 5432}]},
    {"namespace": "ops", "name": "prom", "labels": {"app": "prom"}, "ip": "10.0.1.1"},
    {"namespace": "dev", "name": "api", "labels": {"app": "api"}, "ip": "10.0.2.1",
     "ports": [{"name": "http", "port": 9090}]},
    {"namespace": "unlisted", "name": "job", "labels": {}, "ip": "192.168.5.5"}
  ]
}"#;

struct World {
    cluster: Cluster,
    policies: PolicySet,
}

fn world(policies: &str) -> World {
    let cluster = Cluster::from_json(CLUSTER, "cluster.json").expect("cluster");
    let mut docs = Vec::new();
    parse_text(policies, "policies.yaml", &mut docs).expect("yaml");
    let policies = PolicySet::from_documents(&docs, true).expect("policies");
    World { cluster, policies }
}

impl World {
    fn allowed(&self, from: &str, to: &str, port: u32, protocol: &str) -> bool {
        let flow = resolve_flow(&self.cluster, from, to, port, Some(protocol)).expect("flow");
        let eval = Evaluator::new(&self.cluster, &self.policies);
        let verdict = eval.evaluate(&flow);
        assert_eq!(verdict.allowed, eval.allowed(&flow), "{from} -> {to}");
        if let (sluice_netpol::Endpoint::Pod(s), sluice_netpol::Endpoint::Pod(d)) =
            (flow.from, flow.to)
        {
            let reach =
                Reachability::compute(&self.cluster, &self.policies, flow.port, flow.protocol);
            assert_eq!(
                reach.allowed(s, d),
                verdict.allowed,
                "matrix disagrees on {from} -> {to}"
            );
            assert_eq!(
                reach.summary(),
                naive_summary(&self.cluster, &self.policies, flow.port, flow.protocol)
            );
        }
        verdict.allowed
    }

    fn tcp(&self, from: &str, to: &str, port: u32) -> bool {
        self.allowed(from, to, port, "TCP")
    }
}

fn np(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{}\n",
        spec.lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn without_policies_everything_is_allowed() {
    let w = world("");
    assert!(w.tcp("shop/web", "shop/db", 5432));
    assert!(w.tcp("1.2.3.4", "shop/db", 1));
    assert!(w.tcp("shop/db", "8.8.8.8", 53));
}

#[test]
fn default_deny_ingress_isolates_only_ingress_of_its_namespace() {
    let w = world(&np(
        "shop",
        "deny",
        "podSelector: {}\npolicyTypes: [Ingress]",
    ));
    assert!(!w.tcp("shop/web", "shop/db", 5432));
    assert!(!w.tcp("ops/prom", "shop/web", 8080));
    assert!(!w.tcp("9.9.9.9", "shop/web", 8080));
    assert!(w.tcp("shop/web", "ops/prom", 80), "egress is not isolated");
    assert!(
        w.tcp("ops/prom", "dev/api", 9090),
        "other namespaces are untouched"
    );
}

#[test]
fn default_deny_egress() {
    let w = world(&np(
        "shop",
        "deny",
        "podSelector: {}\npolicyTypes: [Egress]",
    ));
    assert!(!w.tcp("shop/web", "ops/prom", 80));
    assert!(!w.tcp("shop/web", "8.8.8.8", 53));
    assert!(
        w.tcp("ops/prom", "shop/web", 8080),
        "ingress is not isolated"
    );
}

#[test]
fn policy_types_are_inferred_from_the_rules() {
    // Egress rules present, no policyTypes: Ingress and Egress (ingress isolated with no rules).
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: web}}\negress:\n- to: [{podSelector: {matchLabels: {app: api}}}]",
    ));
    assert!(
        !w.tcp("shop/api", "shop/web", 8080),
        "ingress isolated by inference"
    );
    assert!(w.tcp("shop/web", "shop/api", 9090));
    assert!(!w.tcp("shop/web", "shop/db", 5432));
    // An empty egress list does not make a policy an egress policy.
    let w = world(&np("shop", "p", "podSelector: {}\negress: []"));
    assert!(w.tcp("shop/web", "ops/prom", 80));
    assert!(!w.tcp("ops/prom", "shop/web", 8080));
}

#[test]
fn explicit_policy_types_ignore_rules_of_the_other_direction() {
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {}\npolicyTypes: [Egress]\ningress:\n- from: [{podSelector: {matchLabels: {app: nothing}}}]\negress:\n- {}",
    ));
    assert!(
        w.tcp("ops/prom", "shop/web", 8080),
        "ingress is not isolated"
    );
    assert!(
        w.tcp("shop/web", "ops/prom", 80),
        "an empty egress rule allows everything"
    );
}

#[test]
fn pod_selector_peers_stay_in_the_policy_namespace() {
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: api}}}]",
    ));
    assert!(w.tcp("shop/api", "shop/db", 5432));
    assert!(
        !w.tcp("dev/api", "shop/db", 5432),
        "same labels, other namespace"
    );
    assert!(!w.tcp("shop/web", "shop/db", 5432));
    assert!(w.tcp("shop/web", "shop/api", 9090), "api is not selected");
}

#[test]
fn namespace_selector_and_pod_selector_combine_with_and_within_a_peer_or_across_peers() {
    let and = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {env: dev}}\n    podSelector: {matchLabels: {app: api}}",
    ));
    assert!(and.tcp("dev/api", "shop/db", 5432));
    assert!(!and.tcp("shop/api", "shop/db", 5432), "shop is not env=dev");
    let or = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: db}}\ningress:\n- from:\n  - namespaceSelector: {matchLabels: {team: ops}}\n  - podSelector: {matchLabels: {app: web}}",
    ));
    assert!(or.tcp("ops/prom", "shop/db", 5432));
    assert!(or.tcp("shop/web", "shop/db", 5432));
    assert!(!or.tcp("shop/api", "shop/db", 5432));
    assert!(!or.tcp("dev/api", "shop/db", 5432));
}

#[test]
fn every_namespace_has_its_name_label_and_empty_selectors_match_all() {
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {}\ningress:\n- from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: unlisted}}}]",
    ));
    assert!(w.tcp("unlisted/job", "shop/web", 8080));
    assert!(!w.tcp("ops/prom", "shop/web", 8080));
    let all = world(&np(
        "shop",
        "p",
        "podSelector: {}\ningress:\n- from: [{namespaceSelector: {}}]",
    ));
    assert!(all.tcp("dev/api", "shop/web", 8080));
    assert!(
        !all.tcp("1.2.3.4", "shop/web", 8080),
        "selectors never match external addresses"
    );
}

#[test]
fn match_expressions() {
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {matchExpressions: [{key: tier, operator: In, values: [back]}]}\ningress:\n- from:\n  - podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}\n    namespaceSelector: {matchExpressions: [{key: env, operator: Exists}]}",
    ));
    assert!(w.tcp("dev/api", "shop/db", 5432));
    assert!(!w.tcp("shop/web", "shop/db", 5432));
    assert!(!w.tcp("ops/prom", "shop/db", 5432), "ops has no env label");
    assert!(w.tcp("ops/prom", "shop/web", 8080), "web is not tier=back");
}

#[test]
fn ip_blocks_match_pod_ips_and_external_addresses_minus_exceptions() {
    let w = world(&np(
        "shop",
        "p",
        // Host bits set: read as 10.0.0.0/16, as the API server does.
        "podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{ipBlock: {cidr: 10.0.5.7/16, except: [10.0.1.0/24]}}]",
    ));
    assert!(
        w.tcp("shop/api", "shop/db", 5432),
        "pod IP inside the block"
    );
    assert!(
        !w.tcp("ops/prom", "shop/db", 5432),
        "pod IP in the exception"
    );
    assert!(w.tcp("10.0.200.9", "shop/db", 5432));
    assert!(!w.tcp("10.0.1.9", "shop/db", 5432));
    assert!(!w.tcp("11.0.0.1", "shop/db", 5432));
    assert!(!w.tcp("unlisted/job", "shop/db", 5432));
    let egress = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n- to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]",
    ));
    assert!(egress.tcp("shop/web", "8.8.8.8", 443));
    assert!(
        egress.tcp("shop/web", "unlisted/job", 80),
        "192.168.5.5 is outside 10/8"
    );
    assert!(!egress.tcp("shop/web", "shop/api", 9090));
    assert!(!egress.tcp("shop/web", "10.1.2.3", 443));
    assert!(
        !egress.tcp("shop/web", "fd00::1", 443),
        "an IPv4 block never matches IPv6"
    );
}

#[test]
fn named_ports_resolve_on_the_destination_pod() {
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {}\ningress:\n- ports: [{port: http}]",
    ));
    assert!(w.tcp("ops/prom", "shop/web", 8080), "web's http is 8080");
    assert!(!w.tcp("ops/prom", "shop/web", 9090));
    assert!(w.tcp("ops/prom", "shop/api", 9090), "api's http is 9090");
    assert!(
        !w.tcp("ops/prom", "shop/db", 5432),
        "db has no port named http"
    );
    // Named egress ports resolve on the destination too; an external address has none.
    let e = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n- ports: [{port: http}]",
    ));
    assert!(e.tcp("shop/web", "shop/api", 9090));
    assert!(e.tcp("shop/web", "dev/api", 9090));
    assert!(!e.tcp("shop/web", "shop/db", 5432));
    assert!(!e.tcp("shop/web", "8.8.8.8", 9090));
    // The protocol of a named port must match the container port's.
    let udp = world(&np(
        "shop",
        "p",
        "podSelector: {}\ningress:\n- ports: [{port: dns, protocol: UDP}]",
    ));
    assert!(udp.allowed("ops/prom", "shop/api", 53, "UDP"));
    assert!(!udp.allowed("ops/prom", "shop/api", 53, "TCP"));
    let wrong = world(&np(
        "shop",
        "p",
        "podSelector: {}\ningress:\n- ports: [{port: dns}]",
    ));
    assert!(!wrong.allowed("ops/prom", "shop/api", 53, "UDP"));
    assert!(!wrong.allowed("ops/prom", "shop/api", 53, "TCP"));
}

#[test]
fn port_ranges_protocols_and_rules_without_ports() {
    let w = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: db}}\ningress:\n- ports: [{port: 5000, endPort: 5500}, {protocol: SCTP}]",
    ));
    assert!(w.tcp("shop/web", "shop/db", 5000));
    assert!(w.tcp("shop/web", "shop/db", 5432));
    assert!(w.tcp("shop/web", "shop/db", 5500));
    assert!(!w.tcp("shop/web", "shop/db", 5501));
    assert!(!w.tcp("shop/web", "shop/db", 4999));
    assert!(
        !w.allowed("shop/web", "shop/db", 5432, "UDP"),
        "the range is TCP"
    );
    assert!(
        w.allowed("shop/web", "shop/db", 1, "SCTP"),
        "protocol without port: every port"
    );
    let any = world(&np(
        "shop",
        "p",
        "podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {}}]",
    ));
    assert!(
        any.allowed("shop/web", "shop/db", 1, "UDP"),
        "no ports: every port and protocol"
    );
    assert!(!any.tcp("ops/prom", "shop/db", 5432));
}

#[test]
fn policies_are_additive_and_both_ends_must_agree() {
    let w = world(&format!(
        "{}{}{}",
        np(
            "shop",
            "deny",
            "podSelector: {}\npolicyTypes: [Ingress, Egress]"
        ),
        np(
            "shop",
            "web-out",
            "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress:\n- to: [{podSelector: {matchLabels: {app: api}}}]\n  ports: [{port: 9090}]"
        ),
        np(
            "shop",
            "api-in",
            "podSelector: {matchLabels: {app: api}}\npolicyTypes: [Ingress]\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]"
        ),
    ));
    assert!(w.tcp("shop/web", "shop/api", 9090));
    assert!(
        !w.tcp("shop/web", "shop/api", 9091),
        "egress allows only 9090"
    );
    assert!(
        !w.tcp("shop/api", "shop/web", 8080),
        "web's ingress is denied"
    );
    assert!(!w.tcp("shop/db", "shop/api", 9090), "db's egress is denied");
    assert!(
        w.tcp("shop/db", "shop/db", 5432),
        "a pod may always reach itself"
    );
}

#[test]
fn verdicts_name_isolation_and_the_rule_that_allowed() {
    let w = world(&format!(
        "{}{}",
        np("shop", "deny", "podSelector: {}"),
        np(
            "shop",
            "db",
            "podSelector: {matchLabels: {app: db}}\ningress:\n- from: [{podSelector: {matchLabels: {app: web}}}]\n- from: [{podSelector: {matchLabels: {app: api}}}]"
        ),
    ));
    let flow = resolve_flow(&w.cluster, "shop/api", "shop/db", 5432, None).expect("flow");
    let v = Evaluator::new(&w.cluster, &w.policies).evaluate(&flow);
    assert!(v.allowed);
    assert!(!v.egress.isolated);
    assert!(v.ingress.isolated);
    assert_eq!(v.ingress.policies.len(), 2);
    assert_eq!(v.ingress.allowed_by.len(), 1);
    assert_eq!(
        w.policies.policies[v.ingress.allowed_by[0].policy].name,
        "db"
    );
    assert_eq!(v.ingress.allowed_by[0].rule, 1);
}
