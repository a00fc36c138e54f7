//! Lint findings (each check fires on its mistake and stays quiet on a clean set) and what-if
//! diffs.

use sluice_netpol::diff::{diff, ports_of_interest};
use sluice_netpol::docs::parse_text;
use sluice_netpol::lint::{Finding, Level, lint};
use sluice_netpol::workload::Inventory;
use sluice_netpol::{Cluster, PolicySet, Protocol};

fn docs(text: &str) -> Vec<sluice_netpol::docs::Document> {
    let mut out = Vec::new();
    parse_text(text, "in.yaml", &mut out).expect("yaml");
    out
}

fn run_lint(policies: &str, manifests: Option<&str>) -> Vec<Finding> {
    let set = PolicySet::from_documents(&docs(policies), false).expect("policies");
    let pods = manifests.map(|m| {
        Inventory::from_documents(&docs(m))
            .expect("manifests")
            .as_cluster()
    });
    lint(&set, pods.as_ref())
}

fn codes(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

const MANIFESTS: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: web, ports: [{name: http, containerPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
";

const CLEAN: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ingress}}}]
    ports: [{port: http}]
  egress:
  - to: [{ipBlock: {cidr: 172.20.0.1/32}}]
    ports: [{port: 6443}]
";

#[test]
fn a_clean_set_has_no_findings() {
    let findings = run_lint(CLEAN, Some(MANIFESTS));
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn each_mistake_is_reported_with_file_policy_and_field() {
    let bad = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - ports: [{port: 8080}]
  - from: [{podSelector: {matchLabels: {app: lb}}}]
    ports: [{port: 8080}]
  - from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]
    ports: [{port: 9000, endPort: 8000}, {port: metrics}]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {component: kube-apiserver}}}]
    ports: [{port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: typo, namespace: shop}
spec: {podSelector: {matchLabels: {app: wbe}}}
";
    let findings = run_lint(bad, Some(MANIFESTS));
    let got = codes(&findings);
    for code in [
        "open-to-everyone",
        "shadowed-rule",
        "except-outside-cidr",
        "invalid-end-port",
        "undeclared-named-port",
        "apiserver-by-selector",
        "egress-without-dns",
        "selects-no-pods",
        "no-default-deny",
    ] {
        assert!(got.contains(&code), "{code} missing from {got:?}");
    }
    let shadow = findings
        .iter()
        .find(|f| f.code == "shadowed-rule")
        .expect("shadow");
    assert_eq!(shadow.field.as_deref(), Some("spec.ingress[1]"));
    assert_eq!(shadow.file, "in.yaml");
    assert_eq!(shadow.policy, "shop/web");
    let except = findings
        .iter()
        .find(|f| f.code == "except-outside-cidr")
        .expect("except");
    assert_eq!(except.level, Level::Error);
    assert_eq!(
        except.field.as_deref(),
        Some("spec.ingress[2].from[0].ipBlock.except[0]")
    );
    assert_eq!(findings[0].level, Level::Error, "errors come first");
    // Without pods, the pod-aware checks stay quiet rather than guess.
    let blind = codes(&run_lint(bad, None));
    assert!(!blind.contains(&"selects-no-pods") && !blind.contains(&"undeclared-named-port"));
}

#[test]
fn strict_reading_rejects_what_lint_reports() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 90, endPort: 80}]}]\n";
    let err = PolicySet::from_documents(&docs(text), true).expect_err("strict");
    assert!(
        err.to_string().contains("spec.ingress[0].ports[0].endPort"),
        "{err}"
    );
}

#[test]
fn diff_lists_newly_blocked_and_newly_allowed_flows() {
    let cluster = Cluster::from_json(
        r#"{"pods": [
            {"namespace": "shop", "name": "web", "labels": {"app": "web"}, "ports": [{"name": "http", "port": 8080}]},
            {"namespace": "shop", "name": "db", "labels": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]},
            {"namespace": "ops", "name": "prom", "labels": {"app": "prom"}}]}"#,
        "c",
    )
    .expect("cluster");
    let before = PolicySet::from_documents(
        &docs("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{podSelector: {}}]}]\n"),
        true,
    )
    .expect("before");
    let after = PolicySet::from_documents(
        &docs("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}], ports: [{port: pg}]}]\n"),
        true,
    )
    .expect("after");
    let ports = ports_of_interest(&cluster, &[&before, &after]);
    assert_eq!(ports, vec![(5432, Protocol::Tcp), (8080, Protocol::Tcp)]);
    let d = diff(&cluster, &before, &after, &ports);
    let blocked: Vec<String> = d
        .newly_blocked
        .iter()
        .map(|f| format!("{}>{}:{}", f.from, f.to, f.port))
        .collect();
    let allowed: Vec<String> = d
        .newly_allowed
        .iter()
        .map(|f| format!("{}>{}:{}", f.from, f.to, f.port))
        .collect();
    assert_eq!(
        blocked,
        vec!["shop/web>shop/db:5432", "shop/web>shop/db:8080"]
    );
    assert_eq!(allowed, vec!["ops/prom>shop/db:5432"]);
}
