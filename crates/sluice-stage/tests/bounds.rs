//! Project bounds, durations and apply order, without any source or renderer.

use serde_json::json;
use sluice_api::Project;
use sluice_stage::bounds::Bounds;
use sluice_stage::load::{is_dns_label, parse_duration_ms};
use sluice_stage::order::{Scope, Scopes, prepare};

fn project(spec: serde_json::Value) -> Project {
    serde_json::from_value(
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Project",
                                  "metadata": {"name": "team"}, "spec": spec}),
    )
    .expect("project")
}

#[test]
fn globs_bound_sources_namespaces_and_cluster_kinds() {
    let b = Bounds::new(&project(json!({
        "sourceUrls": ["https://git.example.com/team/*"],
        "destinationNamespaces": ["team", "team-*"],
        "clusterScopedKinds": [{"group": "", "kind": "Namespace"}, {"group": "rbac.authorization.k8s.io", "kind": "*"}],
    })))
    .expect("bounds");
    assert!(
        b.check_source("https://git.example.com/team/app.git")
            .is_none()
    );
    assert!(
        b.check_source("https://git.example.com/team/sub/app.git")
            .is_none()
    );
    let why = b
        .check_source("https://user:secret@git.example.com/other/app.git")
        .expect("outside");
    assert!(!why.contains("secret"), "credentials are redacted: {why}");

    let objects = vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "team-x"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "teamx"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-new"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}),
    ];
    let prepared = prepare(&objects, &mut Scopes::default(), "team").expect("prepare");
    let verdicts: Vec<(String, bool)> = prepared
        .iter()
        .map(|p| (p.name.clone(), b.check_object(p).is_none()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("team-new".to_owned(), true),
            ("kube-system".to_owned(), false),
            ("r".to_owned(), true),
            ("fast".to_owned(), false),
            ("a".to_owned(), true),
            ("b".to_owned(), true),
            ("c".to_owned(), false),
        ]
    );
    // Empty lists allow nothing.
    let closed = Bounds::new(&project(json!({}))).expect("bounds");
    assert!(
        closed
            .check_source("https://git.example.com/team/app.git")
            .is_some()
    );
    assert!(closed.check_object(&prepared[4]).is_some());
}

#[test]
fn order_and_scopes() {
    let objects = vec![
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "ignored"}}),
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "gadgets.example.com"},
               "spec": {"group": "example.com", "names": {"kind": "Gadget"}, "scope": "Cluster"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
    ];
    let prepared = prepare(&objects, &mut Scopes::default(), "shop").expect("prepare");
    let order: Vec<&str> = prepared.iter().map(|p| p.kind.as_str()).collect();
    assert_eq!(
        order,
        ["CustomResourceDefinition", "Namespace", "Gadget", "Widget"]
    );
    let gadget = &prepared[2];
    assert_eq!(gadget.scope, Scope::Cluster);
    assert_eq!(gadget.namespace, None);
    assert!(
        gadget.object["metadata"].get("namespace").is_none(),
        "namespace dropped"
    );
    assert_eq!(prepared[3].namespace.as_deref(), Some("shop"));
    let missing = prepare(
        &[json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})],
        &mut Scopes::default(),
        "x",
    );
    assert!(missing.is_err_and(|e| e.contains("metadata.name")));
}

#[test]
fn durations_and_labels() {
    assert_eq!(parse_duration_ms("90s"), Some(90_000));
    assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration_ms("250ms"), Some(250));
    assert_eq!(parse_duration_ms("1.5m"), Some(90_000));
    for bad in ["", "5", "5d", "m", "-1s", "1e400h"] {
        assert_eq!(parse_duration_ms(bad), None, "{bad}");
    }
    assert!(is_dns_label("web-1"));
    for bad in ["", "Web", "-a", "a-", "a_b", &"a".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad}");
    }
}
