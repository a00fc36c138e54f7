//! `sluice plan` end to end through the binary, with real Git repositories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sluice_testkit::commit_all;

fn sluice(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .expect("run sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/stageset")
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, body).expect("write");
    path
}

#[test]
fn the_example_plans_every_stage_in_apply_order() {
    let cache = tempfile::tempdir().expect("tmp");
    let stageset = example().join("stageset.yaml");
    let sources = example().join("sources");
    let args = [
        "plan",
        stageset.to_str().expect("utf8"),
        "--sources",
        sources.to_str().expect("utf8"),
        "-o",
        "json",
    ];
    let out = sluice(&args, cache.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plans: Value = serde_json::from_slice(&out.stdout).expect("json");
    let plan = &plans[0];
    assert_eq!(plan["stageset"], "shop/webshop");
    assert_eq!(plan["project"], "shop");
    let stages = plan["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["platform", "backend", "frontend"]);
    // Namespaces and CRDs first; the namespace is filled in from targetNamespace; the custom
    // kind is namespaced because stage 1's CRD says so.
    let platform: Vec<&str> = stages[0]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(platform, ["Namespace", "CustomResourceDefinition"]);
    let widget = stages[1]["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["kind"] == "Widget")
        .expect("widget");
    assert_eq!(widget["namespace"], "shop");
    assert_eq!(stages[2]["engine"], "jsonnet");
    assert_eq!(stages[2]["objects"].as_array().map(Vec::len), Some(4));
    for s in stages {
        assert!(
            s["revision"]
                .as_str()
                .is_some_and(|r| r.starts_with("local@sha256:")),
            "{s}"
        );
        assert_eq!(s["problems"], serde_json::json!([]));
    }
    // Deterministic: the same inputs plan to the same bytes.
    let again = sluice(&args, cache.path());
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn git_sources_are_pinned_to_the_commit_and_project_bounds_name_the_object() {
    let work = tempfile::tempdir().expect("tmp");
    let repo = work.path().join("repo");
    write(
        &repo,
        "app/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: kube-system}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: too-much}\nrules: []\n",
    );
    let sha = commit_all(&repo, "one");
    let url = format!("file://{}", repo.display());
    let stageset = write(
        work.path(),
        "stageset.yaml",
        &format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: Project\nmetadata: {{name: team}}\nspec:\n  sourceUrls: ['file://**']\n  destinationNamespaces: [team-*]\n---\napiVersion: sluice.dev/v1alpha1\nkind: StageSet\nmetadata: {{name: app, namespace: team-a}}\nspec:\n  project: team\n  serviceAccountName: deployer\n  stages:\n  - name: app\n    source: {{git: {{url: '{url}', ref: main}}}}\n    path: app\n"
        ),
    );
    let out = sluice(
        &["plan", stageset.to_str().expect("utf8"), "-o", "json"],
        &work.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let plans: Value = serde_json::from_slice(&out.stdout).expect("json");
    let stage = &plans[0]["stages"][0];
    assert!(
        stage["revision"]
            .as_str()
            .is_some_and(|r| r.ends_with(&sha)),
        "{stage}"
    );
    let problems: Vec<&str> = stage["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ConfigMap kube-system/elsewhere") && p.contains("team-*")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ClusterRole too-much") && p.contains("clusterScopedKinds")),
        "{problems:?}"
    );
    // Cluster-scoped objects come first; the object inside the bounds got the StageSet's
    // namespace.
    assert_eq!(stage["objects"][0]["kind"], "ClusterRole");
    assert_eq!(stage["objects"][1]["name"], "settings");
    assert_eq!(stage["objects"][1]["namespace"], "team-a");

    // A source outside the project's URLs is refused too.
    let narrow = std::fs::read_to_string(&stageset)
        .expect("read")
        .replace("'file://**'", "'https://git.example.com/*'");
    std::fs::write(&stageset, narrow).expect("write");
    let out = sluice(
        &["plan", stageset.to_str().expect("utf8")],
        &work.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("outside project team's sourceUrls"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bad_stagesets_are_refused_with_the_field() {
    let work = tempfile::tempdir().expect("tmp");
    let cases = [
        (
            "stages:\n  - {name: a, source: {git: {url: x}}}\n  - {name: a, source: {git: {url: x}}}\n",
            "appears twice",
        ),
        (
            "stages:\n  - {name: A_b, source: {git: {url: x}}}\n",
            "not a DNS label",
        ),
        ("stages:\n  - {name: a}\n", "needs a sourceRef or a source"),
        (
            "stages:\n  - {name: a, source: {http: {url: 'https://x/a.tar.gz', digest: md5:1}}}\n",
            "digest",
        ),
        ("stagez: []\n", "stagez"),
        (
            "stages:\n  - {name: a, source: {git: {url: x, ref: n}}}\n",
            "quote the value",
        ),
        (
            "timeout: soon\n  stages:\n  - {name: a, source: {git: {url: x}}}\n",
            "spec.timeout",
        ),
    ];
    for (i, (spec, needle)) in cases.iter().enumerate() {
        let spec = spec.replace(
            "
  -", "
    -",
        );
        let body = format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: StageSet\nmetadata: {{name: s, namespace: team}}\nspec:\n  serviceAccountName: d\n  {spec}"
        );
        let path = write(work.path(), &format!("s{i}.yaml"), &body);
        let out = sluice(
            &["plan", path.to_str().expect("utf8")],
            &work.path().join("cache"),
        );
        assert_eq!(out.status.code(), Some(1), "case {i}");
        let err = text(&out.stderr);
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(err.contains(&format!("s{i}.yaml")), "case {i}: {err}");
    }
}

#[test]
fn a_source_ref_without_its_object_is_reported_not_guessed() {
    let work = tempfile::tempdir().expect("tmp");
    let path = write(
        work.path(),
        "s.yaml",
        "apiVersion: sluice.dev/v1alpha1\nkind: StageSet\nmetadata: {name: s, namespace: team}\nspec:\n  serviceAccountName: d\n  project: missing\n  stages:\n  - {name: a, sourceRef: {kind: GitRepository, name: repo}}\n",
    );
    let out = sluice(
        &["plan", path.to_str().expect("utf8")],
        &work.path().join("cache"),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("SourceNotReady") && stdout.contains("--sources"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Project missing is not defined"),
        "{stdout}"
    );
}
