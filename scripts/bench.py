#!/usr/bin/env python3
"""sluice benchmarks (see docs/benchmarks.md). Run: scripts/bench [--quick] [render|netpol|controller]

1. plain engine vs `kubectl kustomize` on N generated Deployments (wall time, peak RSS);
2. kustomize through `sluice build` (sandbox included) vs `kubectl kustomize` on an overlay;
3. cached re-build of a pinned Git source;
4. `sluice netpol`: reachability matrix and explain on synthetic clusters of 1k/10k/50k pods,
   against the naive pairwise evaluator.
"""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, "target", "release", "sluice")
KUBECTL = shutil.which("kubectl")
QUICK = "--quick" in sys.argv
SECTIONS = [a for a in sys.argv[1:] if not a.startswith("-")] or ["render", "netpol", "controller", "server"]
NETPOL_BENCH = os.path.join(ROOT, "target", "release", "examples", "netpol_bench")


def deployment(i):
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: bench
  labels: {{app: app-{i}, tier: backend}}
  annotations: {{owner: team-{i % 17}}}
spec:
  replicas: {1 + i % 5}
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}, tier: backend}}
    spec:
      containers:
      - name: app
        image: registry.example.com/app-{i}:1.{i % 9}.0
        args: ["--port=8080", "--log-level=info"]
        ports:
        - {{name: http, containerPort: 8080}}
        env:
        - {{name: SERVICE_NAME, value: app-{i}}}
        - {{name: FEATURE_X, value: "on"}}
        resources:
          requests: {{cpu: 100m, memory: 128Mi}}
          limits: {{memory: 256Mi}}
        readinessProbe:
          httpGet: {{path: /healthz, port: http}}
"""


def measure(cmd):
    """Wall seconds and peak RSS (MiB) of one run of cmd, in a fresh child."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "wall = time.perf_counter() - t\n"
        "if r.returncode: sys.stderr.write(r.stderr.decode()); sys.exit(1)\n"
        "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    wall, rss = out.stdout.split()
    return float(wall), float(rss)


def bench_scaling(work):
    print("## 1. plain engine vs kubectl kustomize (one file of N Deployments)\n")
    print("| objects | MB | sluice plain s | sluice RSS MiB | sluice MB/s | kubectl kustomize s | kubectl RSS MiB | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    sizes = [500, 1000, 2000] if QUICK else [500, 1000, 2000, 5000]
    for n in sizes:
        d = os.path.join(work, f"scale-{n}")
        os.makedirs(d)
        with open(os.path.join(d, "deployments.yaml"), "w") as f:
            f.write("---\n".join(deployment(i) for i in range(n)))
        size = os.path.getsize(os.path.join(d, "deployments.yaml")) / 1e6
        plain_runs = [measure([SLUICE, "--log-level", "warn", "build", d, "--engine", "plain", "--cache-dir", work + "/c"]) for _ in range(5)]
        s_wall = statistics.median(r[0] for r in plain_runs)
        s_rss = max(r[1] for r in plain_runs)
        k = os.path.join(work, f"kust-{n}")
        os.makedirs(k)
        shutil.copy(os.path.join(d, "deployments.yaml"), k)
        with open(os.path.join(k, "kustomization.yaml"), "w") as f:
            f.write("resources:\n- deployments.yaml\n")
        k_runs = [measure([KUBECTL, "kustomize", k]) for _ in range(1 if n >= 2000 else 3)]
        k_wall = statistics.median(r[0] for r in k_runs)
        k_rss = max(r[1] for r in k_runs)
        print(f"| {n} | {size:.1f} | {s_wall:.3f} | {s_rss:.0f} | {size / s_wall:.0f} | {k_wall:.2f} | {k_rss:.0f} | {k_wall / s_wall:.0f}x |")
        sys.stdout.flush()


def bench_sandbox(work):
    print("\n## 2. kustomize through sluice (sandbox included) vs kubectl kustomize directly\n")
    d = os.path.join(work, "overlay")
    shutil.copytree(os.path.join(ROOT, "examples", "kustomize"), d)
    with open(os.path.join(d, "base", "more.yaml"), "w") as f:
        f.write("---\n".join(deployment(i) for i in range(30)))
    kust = os.path.join(d, "base", "kustomization.yaml")
    text = open(kust).read().replace("- deployment.yaml\n", "- deployment.yaml\n- more.yaml\n")
    open(kust, "w").write(text)
    runs = 5 if QUICK else 25
    cache = os.path.join(work, "c2")
    subprocess.run([SLUICE, "--log-level", "warn", "build", d, "--path", "overlays/prod", "--cache-dir", cache], check=True, stdout=subprocess.DEVNULL)
    direct, through = [], []
    for _ in range(runs):
        direct.append(measure([KUBECTL, "kustomize", os.path.join(d, "overlays", "prod")])[0])
        through.append(measure([SLUICE, "--log-level", "warn", "build", d, "--path", "overlays/prod", "--cache-dir", cache])[0])
    md, mt = statistics.median(direct), statistics.median(through)
    print(f"| runs | kubectl kustomize median s | sluice build median s | overhead |")
    print(f"|---:|---:|---:|---:|")
    print(f"| {runs} | {md:.3f} | {mt:.3f} | {100 * (mt - md) / md:+.1f} % |")


def bench_cached_git(work):
    print("\n## 3. cached re-build of a pinned Git source\n")
    repo = os.path.join(work, "repo")
    shutil.copytree(os.path.join(ROOT, "examples", "guestbook"), repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
    cache = os.path.join(work, "c3")
    cmd = [SLUICE, "--log-level", "warn", "build", "file://" + repo, "--ref", sha, "--cache-dir", cache]
    first = measure(cmd)[0]
    runs = [measure(cmd)[0] for _ in range(5 if QUICK else 25)]
    print("| first build s | cached re-build median ms | max ms |")
    print("|---:|---:|---:|")
    print(f"| {first:.3f} | {1000 * statistics.median(runs):.1f} | {1000 * max(runs):.1f} |")


def bench_netpol(work):
    """Synthetic clusters: 100 pods and 10 policies per namespace (1,000 policies at 10k pods).

    Pinned to one CPU with taskset (the target is stated for one core)."""
    import json
    import shutil

    one_core = ["taskset", "-c", "0"] if shutil.which("taskset") else []

    print("\n### 4. `sluice netpol`: full reachability matrix for one port (TCP/8080), one core\n")
    print("| pods | namespaces | policies | atoms | matrix s (library) | `check --summary` s (CLI, incl. load) | CLI peak RSS MiB | naive pairwise s | speed-up | explain µs/flow |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    sizes = [(1000, 10, 100), (10000, 100, 1000)] + ([] if QUICK else [(50000, 500, 5000)])
    for pods, namespaces, policies in sizes:
        out = os.path.join(work, f"netpol-{pods}")
        subprocess.run([SLUICE, "netpol", "synth", "--namespaces", str(namespaces), "--pods", str(pods),
                        "--policies", str(policies), "--seed", "1", "--out", out],
                       check=True, capture_output=True)
        r = json.loads(subprocess.run(one_core + [NETPOL_BENCH, out, "--port", "8080"], check=True,
                                      capture_output=True, text=True).stdout)
        if r["naive_agrees"] is False:
            sys.exit(f"matrix and naive evaluator disagree at {pods} pods")
        cli = one_core + [SLUICE, "netpol", "check", "--cluster", os.path.join(out, "cluster.json"),
               "--policies", os.path.join(out, "policies"), "--port", "8080", "--summary", "-o", "json"]
        runs = [measure(cli) for _ in range(3 if QUICK else 5)]
        wall = statistics.median(w for w, _ in runs)
        rss = max(m for _, m in runs)
        naive = f"{r['naive_s']:.2f}" + ("" if r["naive_full"] else " (sampled)")
        print(f"| {pods} | {namespaces} | {policies} | {r['atoms']} | {r['matrix_s']:.3f} | {wall:.3f} | "
              f"{rss:.0f} | {naive} | {r['speedup']:.0f}x | {r['explain_us']:.1f} |")


CONTROLLER_BENCH = os.path.join(ROOT, "target", "release", "examples", "controller_bench")


def bench_controller(work):
    """500 StageSets x 3 stages x 20 objects: against the in-memory cluster, and through the
    real kube client against the test API server (in a child process)."""
    import json

    print("\n### 5. Controller: converge from scratch, then a no-op resync\n")
    print("| cluster | StageSets | objects | converge s | converge CPU s | peak RSS MiB | resync CPU ms / StageSet | resync writes | renders |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in ("memory", "kube"):
        for count in ([100] if QUICK else [100, 500]):
            r = json.loads(subprocess.run([CONTROLLER_BENCH, str(count), mode], check=True,
                                          capture_output=True, text=True).stdout)
            if r["ready"] != count or r["resync_writes"] != 0:
                sys.exit(f"controller bench: {r}")
            label = "in-memory" if mode == "memory" else "kube client + test API server"
            print(f"| {label} | {count} | {r['objects']} | {r['converge_s']:.2f} | {r['converge_cpu_s']:.2f} | "
                  f"{r['peak_rss_mib']:.0f} | {r['resync_cpu_ms_per_stageset']:.2f} | {r['resync_writes']} | {r['renders']} |")


def main():
    if not os.path.exists(SLUICE):
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory() as work:
        if "render" in SECTIONS:
            if not KUBECTL:
                sys.exit("kubectl is required for the comparison")
            bench_scaling(work)
            bench_sandbox(work)
            bench_cached_git(work)
        if "netpol" in SECTIONS:
            bench_netpol(work)
        if "controller" in SECTIONS:
            bench_controller(work)
        if "server" in SECTIONS:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import bench_server

            bench_server.run(work)


if __name__ == "__main__":
    main()
