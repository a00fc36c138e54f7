//! Benchmark of the policy engine on a `sluice netpol synth` directory (or any directory in the
//! same format). Prints one JSON object. Run through `scripts/bench`.
//!
//! Usage: netpol_bench DIR [--port N] [--naive-sources K]
//!
//! The naive baseline evaluates every ordered pair one by one. When the cluster is too large to
//! do that in reasonable time, it evaluates K sources against every destination and
//! extrapolates; the JSON says which (`naive_full`).

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sluice_netpol::matrix::naive_summary;
use sluice_netpol::report::explain_text;
use sluice_netpol::{Cluster, Endpoint, Evaluator, Flow, PolicySet, Protocol, Reachability};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).ok_or("usage: netpol_bench DIR")?);
    let port = u16::try_from(arg(&args, "--port").unwrap_or(8080))?;
    let naive_sources = arg(&args, "--naive-sources").unwrap_or(200) as usize;
    let protocol = Protocol::Tcp;

    let t = Instant::now();
    let cluster = Cluster::load(&dir.join("cluster.json"))?;
    let policies = PolicySet::load(&[dir.join("policies")], true)?;
    let load_s = t.elapsed().as_secs_f64();
    let n = cluster.pods.len();

    let mut matrix_times = Vec::new();
    let mut summary = None;
    let mut atoms = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let reach = Reachability::compute(&cluster, &policies, port, protocol);
        summary = Some(reach.summary());
        matrix_times.push(t.elapsed().as_secs_f64());
        atoms = reach.atoms();
    }
    let summary = summary.ok_or("no run")?;
    let matrix_s = median(matrix_times);

    // Naive baseline: full when the pair count is small, sampled otherwise.
    let eval = Evaluator::new(&cluster, &policies);
    let pairs = (n as f64) * (n as f64 - 1.0);
    let (naive_s, naive_full, naive_agrees) = if pairs <= 1.1e8 {
        let t = Instant::now();
        let naive = naive_summary(&cluster, &policies, port, protocol);
        (t.elapsed().as_secs_f64(), true, Some(naive == summary))
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let sources: Vec<usize> = (0..naive_sources).map(|_| rng.random_range(0..n)).collect();
        let t = Instant::now();
        let mut allowed = 0u64;
        for &s in &sources {
            for d in 0..n {
                if s != d
                    && eval.allowed(&Flow {
                        from: Endpoint::Pod(s),
                        to: Endpoint::Pod(d),
                        port,
                        protocol,
                    })
                {
                    allowed += 1;
                }
            }
        }
        std::hint::black_box(allowed);
        let per_pair = t.elapsed().as_secs_f64() / (sources.len() as f64 * (n as f64 - 1.0));
        (per_pair * pairs, false, None)
    };

    // explain: verdict with reasons plus the prose, for random flows.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let flows: Vec<Flow> = (0..2000)
        .map(|_| Flow {
            from: Endpoint::Pod(rng.random_range(0..n)),
            to: Endpoint::Pod(rng.random_range(0..n)),
            port,
            protocol,
        })
        .collect();
    let t = Instant::now();
    let mut bytes = 0;
    for flow in &flows {
        let verdict = eval.evaluate(flow);
        bytes += explain_text(&cluster, &policies, flow, &verdict).len();
    }
    std::hint::black_box(bytes);
    let explain_us = t.elapsed().as_secs_f64() / flows.len() as f64 * 1e6;

    println!(
        "{}",
        serde_json::json!({
            "pods": n,
            "namespaces": cluster.namespaces.len(),
            "policies": policies.policies.len(),
            "port": port,
            "atoms": atoms,
            "pairs": summary.pairs,
            "allowed": summary.allowed,
            "load_s": load_s,
            "matrix_s": matrix_s,
            "naive_s": naive_s,
            "naive_full": naive_full,
            "naive_agrees": naive_agrees,
            "speedup": naive_s / matrix_s,
            "explain_us": explain_us,
        })
    );
    Ok(())
}
