//! The CRDs generated from the Rust types: shape, validation, and the copy the chart ships.

use serde_json::Value;
use sluice_api::{Engine, StageSetSpec, crds, crds_yaml};

fn schema_of<'a>(crd: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for key in path {
        node = &node["properties"][key];
    }
    node
}

#[test]
fn stageset_and_project_crds_have_the_api_shape() {
    let all = crds();
    assert_eq!(all.len(), 2);
    let (stageset, project) = (&all[0], &all[1]);
    assert_eq!(stageset["metadata"]["name"], "stagesets.sluice.dev");
    assert_eq!(stageset["spec"]["scope"], "Namespaced");
    assert_eq!(project["metadata"]["name"], "projects.sluice.dev");
    assert_eq!(project["spec"]["scope"], "Cluster");
    for crd in &all {
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["served"], true);
        assert_eq!(version["storage"], true);
        assert!(
            version["subresources"]["status"].is_object(),
            "status subresource"
        );
    }
    let stages = schema_of(stageset, &["spec", "stages"]);
    assert_eq!(stages["minItems"], 1);
    let name = &stages["items"]["properties"]["name"];
    assert_eq!(name["maxLength"], 63);
    assert!(
        name["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("a-z0-9"))
    );
    let required = schema_of(stageset, &["spec"])["required"].clone();
    assert!(
        required.as_array().is_some_and(
            |r| r.contains(&"stages".into()) && r.contains(&"serviceAccountName".into())
        ),
        "{required}"
    );
    let prune = &stages["items"]["properties"]["prune"];
    assert_eq!(prune["default"], true);
    let digest =
        &stages["items"]["properties"]["source"]["properties"]["http"]["properties"]["digest"];
    assert_eq!(digest["pattern"], "^sha256:[0-9a-f]{64}$");
}

#[test]
fn specs_read_with_defaults_and_reject_unknown_fields() {
    let spec: StageSetSpec = serde_json::from_value(serde_json::json!({
        "serviceAccountName": "deployer",
        "stages": [{"name": "base", "source": {"git": {"url": "https://git.example.com/a.git", "ref": "main"}}, "engine": "kustomize"}]
    }))
    .expect("valid spec");
    assert_eq!(spec.interval, "10m");
    assert_eq!(spec.timeout, "5m");
    assert!(spec.stages[0].prune, "prune defaults to true");
    assert_eq!(spec.stages[0].engine, Some(Engine::Kustomize));
    let git = spec.stages[0]
        .source
        .as_ref()
        .and_then(|s| s.git.as_ref())
        .expect("git");
    assert_eq!(git.reference.as_deref(), Some("main"));

    let typo = serde_json::from_value::<StageSetSpec>(serde_json::json!({
        "serviceAccountName": "deployer", "stages": [], "intervall": "1m"
    }));
    assert!(typo.is_err_and(|e| e.to_string().contains("intervall")));
}

#[test]
fn the_chart_ships_exactly_these_crds() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/sluice/crds/sluice-crds.yaml"
    );
    let shipped = std::fs::read_to_string(path).expect("chart CRDs");
    assert_eq!(
        shipped,
        crds_yaml(),
        "charts/sluice/crds is stale: run `sluice crds > charts/sluice/crds/sluice-crds.yaml`"
    );
}
