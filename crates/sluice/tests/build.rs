//! `sluice build` end to end: the real binary, real files, real Git, the real sandbox,
//! `kubectl kustomize` and the real Helm engine (helm-python-sdk behind a `helm` wrapper).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sluice_testkit::git;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Run {
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn ok(self) -> Self {
        assert!(self.out.status.success(), "failed: {}", self.stderr());
        self
    }
    fn fails_with(self, needle: &str) -> Self {
        assert!(
            !self.out.status.success(),
            "unexpected success: {}",
            self.stdout()
        );
        assert!(
            self.out.stdout.is_empty(),
            "partial output on failure: {}",
            self.stdout()
        );
        let err = self.stderr();
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("error: "), "no one-line error: {err}");
        assert!(last.contains(needle), "expected {needle:?} in {last:?}");
        self
    }
    /// Asserts a JSON log line with the given security level and CWE.
    fn logged(self, security: u64, cwe: u64) -> Self {
        let found = self
            .stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["security"] == security && v["CWE"] == cwe);
        assert!(
            found,
            "no security={security} CWE={cwe} line in:\n{}",
            self.stderr()
        );
        self
    }
}

fn sluice(cache: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-format", "json", "build"])
        .args(args)
        .env("SLUICE_CACHE_DIR", cache)
        .env_remove("SLUICE_KUSTOMIZE_TOOL")
        .env_remove("SLUICE_HELM_TOOL")
        .output()
        .expect("run sluice");
    Run { out }
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}

struct Fixture {
    tree: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self {
            tree: tempfile::tempdir().expect("tree"),
            cache: tempfile::tempdir().expect("cache"),
        }
    }
    fn dir(&self) -> &Path {
        self.tree.path()
    }
    fn build(&self, extra: &[&str]) -> Run {
        let mut args = vec![self.dir().to_str().expect("utf8")];
        args.extend_from_slice(extra);
        sluice(self.cache.path(), &args)
    }
}

// ---- plain ----

#[test]
fn example_renders_byte_identically_every_time() {
    let cache = tempfile::tempdir().expect("cache");
    let example = repo_root().join("examples/guestbook");
    let example = example.to_str().expect("utf8");
    let first = sluice(cache.path(), &[example]).ok().stdout();
    let second = sluice(cache.path(), &[example]).ok().stdout();
    assert_eq!(first, second);
    assert!(first.contains("FEATURE_FLAG: \"yes\""), "{first}");
    let json: Value =
        serde_json::from_str(&sluice(cache.path(), &[example, "-o", "json"]).ok().stdout())
            .expect("json");
    let kinds: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["Deployment", "Service", "ConfigMap"]);
}

#[test]
fn files_are_read_in_sorted_order_and_lists_flattened() {
    let f = Fixture::new();
    write(f.dir(), "b/z.yaml", &cm("z"));
    write(
        f.dir(),
        "a.yml",
        &format!("{}---\n# only a comment\n", cm("a")),
    );
    write(
        f.dir(),
        "b/list.json",
        r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}]}"#,
    );
    write(f.dir(), ".git/config.yaml", "not: a manifest\n");
    write(f.dir(), "README.md", "# not yaml\n");
    let json: Value = serde_json::from_str(&f.build(&["-o", "json"]).ok().stdout()).expect("json");
    let names: Vec<&str> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["a", "s", "z"]);
}

#[test]
fn summary_reports_counts_bytes_and_the_output_digest() {
    let f = Fixture::new();
    write(f.dir(), "a.yaml", &format!("{}---\n{}", cm("a"), cm("b")));
    let yaml = f.build(&[]).ok().stdout();
    let summary: Value =
        serde_json::from_str(&f.build(&["--summary", "-o", "json"]).ok().stdout()).expect("json");
    assert_eq!(summary["objects"], 2);
    assert_eq!(summary["kinds"]["ConfigMap"], 2);
    assert_eq!(summary["engine"], "plain");
    let yaml_summary = f.build(&["--summary"]).ok().stdout();
    use sha2::Digest as _;
    let digest = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(yaml.as_bytes()))
    );
    assert!(yaml_summary.contains(&digest), "{yaml_summary} vs {digest}");
    assert!(yaml_summary.contains(&format!("bytes: {}", yaml.len())));
}

#[test]
fn yaml_without_apiversion_names_the_file() {
    let f = Fixture::new();
    write(f.dir(), "ok.yaml", &cm("a"));
    write(f.dir(), "sub/values.yaml", "replicas: 3\n");
    f.build(&[])
        .fails_with("sub/values.yaml: document 1 has no apiVersion and kind");
}

#[test]
fn invalid_yaml_names_file_and_line() {
    let f = Fixture::new();
    write(f.dir(), "bad.yaml", "apiVersion: v1\nkind: [ConfigMap\n");
    f.build(&[]).fails_with("bad.yaml: invalid YAML at line");
}

#[test]
fn yaml_alias_bomb_is_refused() {
    let f = Fixture::new();
    let mut text = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    write(f.dir(), "bomb.yaml", &text);
    let started = std::time::Instant::now();
    f.build(&[])
        .fails_with("bomb.yaml: YAML aliases expand to more than 10000 nodes")
        .logged(3, 400);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn deeply_nested_document_is_refused() {
    let f = Fixture::new();
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\ndata: {}{}\n",
        "[".repeat(300),
        "]".repeat(300)
    );
    write(f.dir(), "deep.yaml", &text);
    f.build(&[])
        .fails_with("deep.yaml: YAML nests deeper than 100 levels");
}

#[test]
fn size_and_count_limits_name_their_flags() {
    let f = Fixture::new();
    write(
        f.dir(),
        "a.yaml",
        &format!("{}---\n{}---\n{}", cm("a"), cm("b"), cm("c")),
    );
    f.build(&["--max-file-bytes", "40"])
        .fails_with("--max-file-bytes");
    f.build(&["--max-objects", "2"])
        .fails_with("more than 2 objects (--max-objects)");
    write(f.dir(), "b.yaml", &cm("d"));
    f.build(&["--max-manifest-bytes", "150"])
        .fails_with("--max-manifest-bytes");
}

#[test]
fn symlinked_file_out_of_tree_is_refused() {
    let f = Fixture::new();
    write(f.dir(), "a.yaml", &cm("a"));
    std::os::unix::fs::symlink("/etc/passwd", f.dir().join("passwd.yaml")).expect("symlink");
    let run = f
        .build(&[])
        .fails_with("passwd.yaml: symlink resolves outside the source tree")
        .logged(3, 59);
    assert!(!run.stderr().contains("root:x:0"));
}

#[test]
fn symlinked_directory_out_of_tree_is_refused() {
    let f = Fixture::new();
    let outside = tempfile::tempdir().expect("outside");
    write(outside.path(), "secret.yaml", &cm("secret"));
    write(f.dir(), "a.yaml", &cm("a"));
    std::os::unix::fs::symlink(outside.path(), f.dir().join("linked")).expect("symlink");
    f.build(&[])
        .fails_with("linked: symlink resolves outside the source tree");
}

#[test]
fn render_path_cannot_leave_the_source() {
    let f = Fixture::new();
    write(f.dir(), "a.yaml", &cm("a"));
    f.build(&["--path", "../.."])
        .fails_with("resolves outside the source tree")
        .logged(3, 22);
}

// ---- kustomize ----

fn overlay(f: &Fixture) {
    write(f.dir(), "base/cm.yaml", &cm("settings"));
    write(
        f.dir(),
        "base/kustomization.yaml",
        "resources:\n- cm.yaml\n",
    );
    write(
        f.dir(),
        "overlays/prod/kustomization.yaml",
        "namePrefix: prod-\nnamespace: prod\nresources:\n- ../../base\n",
    );
}

#[test]
fn kustomize_overlay_renders_in_the_sandbox() {
    let f = Fixture::new();
    overlay(&f);
    let json: Value = serde_json::from_str(
        &f.build(&["--path", "overlays/prod", "-o", "json"])
            .ok()
            .stdout(),
    )
    .expect("json");
    assert_eq!(json[0]["metadata"]["name"], "prod-settings");
    assert_eq!(json[0]["metadata"]["namespace"], "prod");
    let summary: Value = serde_json::from_str(
        &f.build(&["--path", "overlays/prod", "--summary", "-o", "json"])
            .ok()
            .stdout(),
    )
    .expect("json");
    assert_eq!(summary["engine"], "kustomize");
    assert!(
        summary["tool"]["version"]
            .as_str()
            .unwrap_or_default()
            .contains("v5"),
        "{summary}"
    );
}

#[test]
fn kustomize_paths_out_of_the_tree_are_refused() {
    let f = Fixture::new();
    overlay(&f);
    write(
        f.dir(),
        "overlays/prod/kustomization.yaml",
        "resources:\n- ../../../../etc\n",
    );
    f.build(&["--path", "overlays/prod"])
        .fails_with("resource \"../../../../etc\" resolves outside the source tree")
        .logged(3, 22);
    write(
        f.dir(),
        "overlays/prod/kustomization.yaml",
        "resources:\n- /etc/kubernetes\n",
    );
    f.build(&["--path", "overlays/prod"])
        .fails_with("is an absolute path");
    write(
        f.dir(),
        "overlays/prod/kustomization.yaml",
        "configMapGenerator:\n- name: leak\n  files:\n  - passwd=../../../../../etc/passwd\n",
    );
    f.build(&["--path", "overlays/prod"])
        .fails_with("resolves outside the source tree");
    write(
        f.dir(),
        "overlays/prod/kustomization.yaml",
        "resources:\n- ../../base\n",
    );
    write(
        f.dir(),
        "base/kustomization.yaml",
        "resources:\n- ../../outside\n",
    );
    f.build(&["--path", "overlays/prod"])
        .fails_with("base/kustomization.yaml");
}

#[test]
fn kustomize_remote_bases_and_helm_inflation_are_refused() {
    let f = Fixture::new();
    write(
        f.dir(),
        "kustomization.yaml",
        "resources:\n- https://github.com/org/repo//deploy?ref=v1.0.0\n",
    );
    f.build(&[])
        .fails_with("remote reference \"https://github.com/org/repo//deploy?ref=v1.0.0\"")
        .logged(3, 829);
    write(
        f.dir(),
        "kustomization.yaml",
        "resources:\n- github.com/org/repo/deploy?ref=main\n",
    );
    f.build(&[]).fails_with("remote reference");
    write(
        f.dir(),
        "kustomization.yaml",
        "helmCharts:\n- name: redis\n  repo: https://charts.example.com\n",
    );
    f.build(&[]).fails_with("helmCharts is not allowed");
}

#[test]
fn disabled_engine_names_the_engine_and_flag() {
    let f = Fixture::new();
    overlay(&f);
    f.build(&["--path", "base", "--engines", "plain,jsonnet"])
        .fails_with("the kustomize engine is disabled; enable it with --engines");
}

#[test]
fn missing_tool_is_reported_clearly() {
    let f = Fixture::new();
    overlay(&f);
    f.build(&[
        "--path",
        "base",
        "--kustomize-tool",
        "/nonexistent/kustomize",
    ])
    .fails_with("--kustomize-tool");
}

/// A malicious "kustomize" that tries to read /etc/passwd and to phone home: the sandbox
/// stops both, and the build fails with the tool's own complaint.
#[test]
fn hostile_tool_cannot_read_files_or_reach_the_network() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let f = Fixture::new();
    overlay(&f);
    let tools = tempfile::tempdir().expect("tools");
    let tool = tools.path().join("kustomize");
    write(
        tools.path(),
        "kustomize",
        &format!(
            "#!/bin/bash\necho tool-started >&2\ncat /etc/passwd\nexec 3<>/dev/tcp/127.0.0.1/{port} && echo phoned-home >&2\nexit 1\n"
        ),
    );
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let run = f
        .build(&[
            "--path",
            "base",
            "--kustomize-tool",
            tool.to_str().expect("utf8"),
            "--sandbox-read-path",
            "/usr/bin",
        ])
        .fails_with("kustomize failed");
    let err = run.stderr();
    assert!(
        err.contains("tool-started"),
        "the tool must have run: {err}"
    );
    assert!(err.contains("/etc/passwd: Permission denied"), "{err}");
    assert!(
        !err.contains("root:x:0") && !err.contains("phoned-home"),
        "{err}"
    );
    assert!(listener.accept().is_err(), "the tool reached the listener");
}

// ---- helm ----

/// A `helm` executable backed by the real Helm engine, and the paths it needs in the sandbox.
fn helm_tool(dir: &Path) -> (PathBuf, String) {
    let probe = Command::new("python3")
        .args(["-c", "import sys, os, helm_python; print(sys.executable); print(sys.prefix); print(os.path.dirname(os.path.dirname(helm_python.__file__)))"])
        .output()
        .expect("python3");
    assert!(
        probe.status.success(),
        "helm-python-sdk is required (scripts/test installs it): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let text = String::from_utf8_lossy(&probe.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let fixture = repo_root()
        .join("tests/fixtures/helm-template.py")
        .canonicalize()
        .expect("fixture");
    let tool = dir.join("helm");
    write(
        dir,
        "helm",
        &format!(
            "#!{}\nimport runpy, sys\nrunpy.run_path({:?}, run_name='__main__')\n",
            lines[0],
            fixture.display().to_string()
        ),
    );
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let read_paths = [
        lines[1],
        lines[2],
        fixture.parent().and_then(Path::to_str).unwrap_or(""),
    ]
    .join(":");
    (tool, read_paths)
}

fn chart(f: &Fixture) {
    write(
        f.dir(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(f.dir(), "charts/web/values.yaml", "replicas: 1\n");
    write(f.dir(), "charts/web/values-prod.yaml", "replicas: 4\n");
    write(
        f.dir(),
        "charts/web/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n  namespace: {{ .Release.Namespace }}\ndata:\n  replicas: {{ .Values.replicas | quote }}\n",
    );
}

#[test]
fn helm_chart_renders_with_values_in_the_sandbox() {
    let f = Fixture::new();
    chart(&f);
    let tools = tempfile::tempdir().expect("tools");
    let (tool, read) = helm_tool(tools.path());
    let out = f
        .build(&[
            "--path",
            "charts/web",
            "--helm-tool",
            tool.to_str().expect("utf8"),
            "--sandbox-read-path",
            &read,
            "--release-name",
            "shop",
            "--namespace",
            "prod",
            "--values",
            "values-prod.yaml",
            "-o",
            "json",
        ])
        .ok()
        .stdout();
    let json: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json[0]["metadata"]["name"], "shop-cfg");
    assert_eq!(json[0]["metadata"]["namespace"], "prod");
    assert_eq!(json[0]["data"]["replicas"], "4");
}

#[test]
fn helm_values_outside_the_tree_are_refused() {
    let f = Fixture::new();
    chart(&f);
    f.build(&[
        "--path",
        "charts/web",
        "--helm-tool",
        "/bin/false",
        "--values",
        "../../../../etc/passwd",
    ])
    .fails_with("values file \"../../../../etc/passwd\" resolves outside the source tree")
    .logged(3, 22);
    f.build(&[
        "--path",
        "charts/web",
        "--helm-tool",
        "/bin/false",
        "--values",
        "/etc/passwd",
    ])
    .fails_with("absolute path");
}

#[test]
fn unvendored_helm_dependency_is_refused_before_running_helm() {
    let f = Fixture::new();
    chart(&f);
    write(
        f.dir(),
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\ndependencies:\n- name: redis\n  version: 1.x\n  repository: https://charts.example.com\n",
    );
    f.build(&["--path", "charts/web", "--helm-tool", "/bin/false"])
        .fails_with("remote reference \"redis from https://charts.example.com\"")
        .logged(3, 829);
    write(
        f.dir(),
        "charts/web/charts/redis/Chart.yaml",
        "apiVersion: v2\nname: redis\nversion: 1.0.0\n",
    );
    let tools = tempfile::tempdir().expect("tools");
    let (tool, read) = helm_tool(tools.path());
    f.build(&[
        "--path",
        "charts/web",
        "--helm-tool",
        tool.to_str().expect("utf8"),
        "--sandbox-read-path",
        &read,
    ])
    .ok();
}

#[test]
fn missing_helm_is_reported_clearly() {
    let f = Fixture::new();
    chart(&f);
    f.build(&["--path", "charts/web", "--helm-tool", "/nonexistent/helm"])
        .fails_with("no helm found");
}

// ---- jsonnet ----

#[test]
fn jsonnet_renders_with_arguments_and_imports() {
    let cache = tempfile::tempdir().expect("cache");
    let example = repo_root().join("examples/jsonnet");
    let out = sluice(
        cache.path(),
        &[
            example.to_str().expect("utf8"),
            "--tla-code",
            "replicas=3",
            "-o",
            "json",
        ],
    )
    .ok()
    .stdout();
    let json: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json[0]["kind"], "Deployment");
    assert_eq!(json[0]["spec"]["replicas"], 3);
    assert_eq!(json[1]["kind"], "Service");
    let f = Fixture::new();
    write(
        f.dir(),
        "main.jsonnet",
        "{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: std.extVar('name') } }",
    );
    let out = f
        .build(&["--ext-str", "name=from-ext", "-o", "json"])
        .ok()
        .stdout();
    assert!(out.contains("from-ext"), "{out}");
}

#[test]
fn jsonnet_imports_are_confined() {
    let f = Fixture::new();
    write(
        f.dir(),
        "app/main.jsonnet",
        "import '../../../../etc/passwd'",
    );
    f.build(&["--path", "app"])
        .fails_with("resolves outside the source tree")
        .logged(3, 22);
    write(f.dir(), "app/main.jsonnet", "importstr '/etc/passwd'");
    let run = f
        .build(&["--path", "app"])
        .fails_with("absolute import paths are not allowed");
    assert!(!run.stderr().contains("root:x:0"));
}

#[test]
fn jsonnet_infinite_recursion_is_stopped() {
    let f = Fixture::new();
    write(f.dir(), "main.jsonnet", "local f(x) = f(x + 1) + 1; f(0)");
    let started = std::time::Instant::now();
    f.build(&[]).fails_with("stack overflow");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn jsonnet_runaway_evaluation_hits_the_time_limit() {
    let f = Fixture::new();
    write(
        f.dir(),
        "main.jsonnet",
        "std.length(std.makeArray(100000000, function(i) i * i))",
    );
    f.build(&["--jsonnet-timeout", "1"])
        .fails_with("jsonnet evaluation exceeded 1s (--jsonnet-timeout)");
}

// ---- sources through the CLI ----

#[test]
fn git_source_is_pinned_reported_and_cached() {
    let f = Fixture::new();
    overlay(&f);
    git(f.dir(), &["init", "-q"]);
    git(f.dir(), &["add", "."]);
    git(f.dir(), &["commit", "-qm", "init"]);
    let sha = git(f.dir(), &["rev-parse", "HEAD"]);
    let url = format!("file://{}", f.dir().display());
    let run = sluice(
        f.cache.path(),
        &[
            &url,
            "--ref",
            "main",
            "--path",
            "overlays/prod",
            "--summary",
            "-o",
            "json",
        ],
    )
    .ok();
    let summary: Value = serde_json::from_str(&run.stdout()).expect("json");
    assert_eq!(summary["revision"], format!("main@sha1:{sha}"));
    assert!(run.stderr().contains(&sha), "pinned revision is logged");
    let again = sluice(
        f.cache.path(),
        &[
            &url,
            "--ref",
            &sha,
            "--path",
            "overlays/prod",
            "--summary",
            "-o",
            "json",
        ],
    )
    .ok();
    assert!(
        again.stderr().contains("\"cached\":true"),
        "{}",
        again.stderr()
    );
}

#[test]
fn artifact_urls_require_a_well_formed_digest() {
    let cache = tempfile::tempdir().expect("cache");
    sluice(cache.path(), &["https://example.com/a.tar.gz"]).fails_with("pass --digest");
    sluice(
        cache.path(),
        &["https://example.com/a.tar.gz", "--digest", "sha256:zz"],
    )
    .fails_with("invalid digest");
}

#[test]
fn credentials_in_source_urls_are_redacted_everywhere() {
    let cache = tempfile::tempdir().expect("cache");
    let run = sluice(
        cache.path(),
        &["http://bob:hunter22@127.0.0.1:9/repo.git", "--ref", "main"],
    );
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(!run.out.status.success());
    assert!(!all.contains("hunter22"), "{all}");
    assert!(all.contains("***@127.0.0.1"), "{all}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let f = Fixture::new();
    write(f.dir(), "a.yaml", &cm("a"));
    std::os::unix::fs::symlink("/etc/passwd", f.dir().join("p.yaml")).expect("symlink");
    let run = f.build(&[]);
    for line in run.stderr().lines().filter(|l| !l.starts_with("error: ")) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    run.logged(3, 59);
}
