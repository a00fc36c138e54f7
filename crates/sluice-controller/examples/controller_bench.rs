//! Reconciler benchmark (scripts/bench controller): N StageSets x 3 stages x 20 objects
//! converge from scratch against the in-memory cluster, then a no-op resync of all of them.
//! Prints one JSON object. Sources are a real Git repository; renders are real.
//!
//! Usage: controller_bench [STAGESETS] [memory|kube]   (`serve` is the server half of `kube`)
//!
//! `kube` runs the same through the real `kube` client over HTTP against the in-process test
//! API server. CPU excludes the server's threads (named `testapi`); peak RSS includes the
//! server, which shares the process.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_api::StageSet;
use sluice_controller::cluster::Cluster;
use sluice_controller::kube_cluster::KubeCluster;
use sluice_controller::memory::MemoryCluster;
use sluice_controller::reconcile::Reconciler;
use sluice_stage::plan::PlanOptions;

/// CPU seconds of this process and the children it waited for (git runs as a child).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime, stime, cutime, cstime are fields 14-17 of stat, i.e. 11-14 after the name.
    (ticks(11) + ticks(12) + ticks(13) + ticks(14)) / 100.0
}

fn server_writes(host: &str) -> usize {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return 0;
    };
    let _ = write!(
        stream,
        "GET /debug/writes HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .rsplit_once("\"writes\":")
        .and_then(|(_, rest)| rest.trim_end_matches(['}', '\n', '\r', ' ']).parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of this process's threads named `name` (the test API server's workers).
fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let ticks = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (ticks(11) + ticks(12)) / 100.0
        })
        .sum()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(500);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "memory".into());
    match mode.as_str() {
        "memory" => {
            let cluster = MemoryCluster::default();
            cluster.allow("controller", &["*"], "*", None);
            for i in 0..count {
                cluster.allow(
                    &format!("system:serviceaccount:team-{i}:deployer"),
                    &["*"],
                    "*",
                    Some(&format!("team-{i}")),
                );
            }
            bench(count, &mode, &cluster, "controller", || {
                cluster.writes().len()
            })
        }
        "serve" => {
            let api = sluice_testapi::TestApi::start()?;
            for i in 0..count {
                api.allow(
                    &format!("system:serviceaccount:team-{i}:deployer"),
                    &["*"],
                    "*",
                    Some(&format!("team-{i}")),
                );
            }
            println!("{}", api.url);
            // Serve until the client closes our stdin.
            let mut sink = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
            Ok(())
        }
        "kube" => {
            // The API server runs in a child process, so CPU and RSS here are the client's.
            let mut server = std::process::Command::new(std::env::current_exe()?)
                .args([count.to_string(), "serve".into()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()?;
            let mut url = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(server.stdout.take().ok_or("no stdout")?),
                &mut url,
            )?;
            let url = url.trim().to_owned();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let cluster =
                KubeCluster::new(kube::Config::new(url.parse()?), runtime.handle().clone());
            let host = url.trim_start_matches("http://").to_owned();
            let writes = move || server_writes(&host);
            let result = bench(count, &mode, &cluster, "", writes);
            drop(server.stdin.take());
            let _ = server.wait();
            result
        }
        other => Err(format!("unknown mode {other}: memory or kube").into()),
    }
}

fn bench<C: Cluster>(
    count: usize,
    mode: &str,
    cluster: &C,
    controller: &str,
    writes: impl Fn() -> usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let repo = work.path().join("repo");
    for stage in ["db", "api", "web"] {
        let dir = repo.join(stage);
        std::fs::create_dir_all(&dir)?;
        let mut body = String::new();
        for i in 0..20 {
            body.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {stage}-{i}\n  labels: {{app: {stage}}}\ndata:\n  key: value-{i}\n  other: '{}'\n",
                "x".repeat(200)
            ));
        }
        std::fs::write(dir.join("objects.yaml"), body)?;
    }
    sluice_testkit::commit_all(&repo, "objects");
    let url = format!("file://{}", repo.display());
    let stagesets: Vec<StageSet> = (0..count)
        .map(|i| {
            let stage = |name: &str| json!({"name": name, "source": {"git": {"url": url, "ref": "main"}}, "path": name});
            serde_json::from_value(json!({
                "apiVersion": "sluice.dev/v1alpha1", "kind": "StageSet",
                "metadata": {"name": "app", "namespace": format!("team-{i}"), "generation": 1},
                "spec": {"serviceAccountName": "deployer", "interval": "10m",
                         "stages": [stage("db"), stage("api"), stage("web")]},
            }))
        })
        .collect::<Result<_, _>>()?;
    let reconciler = Reconciler::new(
        cluster,
        PlanOptions {
            cache_dir: work.path().join("cache"),
            sources_dir: None,
            base_dir: work.path().to_path_buf(),
            tools: Default::default(),
            sandbox: Default::default(),
        },
        "sluice-system",
        controller,
    );
    let mut now: DateTime<Utc> =
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")?.with_timezone(&Utc);
    let mut stagesets = stagesets;

    let cpu0 = cpu_seconds() - thread_cpu_seconds("testapi");
    let t0 = Instant::now();
    let mut passes = 0;
    loop {
        passes += 1;
        let mut pending = 0;
        for s in &mut stagesets {
            let next = reconciler.reconcile(s, now);
            if next < Duration::from_secs(60) {
                pending += 1;
            }
        }
        if pending == 0 || passes > 10 {
            break;
        }
        now += chrono::Duration::seconds(2);
    }
    let converge_s = t0.elapsed().as_secs_f64();
    let converge_cpu = cpu_seconds() - thread_cpu_seconds("testapi") - cpu0;
    let ready = stagesets
        .iter()
        .filter(|s| {
            s.status.as_ref().is_some_and(|st| {
                st.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count();
    let objects: usize = stagesets
        .iter()
        .filter_map(|s| s.status.as_ref())
        .flat_map(|st| &st.stages)
        .map(|st| st.objects as usize)
        .sum();
    let writes_after_converge = writes();

    // No-op resync: nothing moved.
    now += chrono::Duration::seconds(601);
    let cpu1 = cpu_seconds() - thread_cpu_seconds("testapi");
    let t1 = Instant::now();
    for s in &mut stagesets {
        reconciler.reconcile(s, now);
    }
    let resync_s = t1.elapsed().as_secs_f64();
    let resync_cpu = cpu_seconds() - thread_cpu_seconds("testapi") - cpu1;
    let resync_writes = writes() - writes_after_converge;

    println!(
        "{}",
        json!({
            "mode": mode, "stagesets": count, "ready": ready, "objects": objects, "passes": passes,
            "converge_s": converge_s, "converge_cpu_s": converge_cpu,
            "writes_converge": writes_after_converge,
            "resync_s": resync_s, "resync_cpu_s": resync_cpu,
            "resync_cpu_ms_per_stageset": resync_cpu * 1000.0 / count as f64,
            "resync_writes": resync_writes, "renders": reconciler.renders(),
            "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}
