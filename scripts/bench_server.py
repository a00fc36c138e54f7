"""`scripts/bench server`: the API server under wrk (Debian) on loopback.

Local mode with 1,000 StageSets in two projects; a non-admin user whose policy lets them see
half. Measures an authenticated, RBAC-checked GET of one StageSet (rotating over the visible
ones), the RBAC-filtered paginated list (limit=100, following `continue`), and the GET again
while a login flood (200 attempts/s, each a bcrypt check) runs.
"""
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLUICE = os.path.join(ROOT, "target", "release", "sluice")
DURATION = os.environ.get("BENCH_SECONDS", "10")

ROTATE_LUA = """
local paths = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def write_fixture(local, count=1000):
    os.makedirs(os.path.join(local, "sources", "gitrepository", "flux-system", "app"))
    with open(os.path.join(local, "sources", "gitrepository", "flux-system", "app", "cm.yaml"), "w") as f:
        f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n")
    with open(os.path.join(local, "projects.yaml"), "w") as f:
        for p in ("team-a", "team-b"):
            f.write(f"---\napiVersion: sluice.dev/v1alpha1\nkind: Project\nmetadata: {{name: {p}}}\n"
                    f"spec:\n  sourceUrls: ['*']\n  destinationNamespaces: ['{p}-*']\n")
    with open(os.path.join(local, "stagesets.yaml"), "w") as f:
        for i in range(count):
            project = "team-a" if i % 2 == 0 else "team-b"
            f.write(f"""---
apiVersion: sluice.dev/v1alpha1
kind: StageSet
metadata: {{name: app-{i:04d}, namespace: {project}-ns{i % 20:02d}}}
spec:
  project: {project}
  serviceAccountName: deployer
  stages:
    - {{name: one, sourceRef: {{kind: GitRepository, name: app, namespace: flux-system}}, engine: plain}}
    - {{name: two, sourceRef: {{kind: GitRepository, name: app, namespace: flux-system}}, engine: plain}}
""")
    policy = os.path.join(local, "..", "policy.csv")
    with open(policy, "w") as f:
        f.write("p, role:half, stagesets, get, team-a/*, allow\ng, reader, role:half\n")
    return os.path.abspath(policy)


def start(local, policy):
    log = open(os.path.join(local, "..", "server.log"), "w")
    proc = subprocess.Popen([SLUICE, "server", "--local", local, "--listen", "127.0.0.1:0",
                             "--rbac-policy", policy, "--log-format", "json"],
                            stderr=subprocess.PIPE, text=True)
    addr = None
    for line in proc.stderr:
        log.write(line)
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if "listening" in v.get("message", ""):
            addr = v["address"]
            break
    threading.Thread(target=lambda: [log.write(l) for l in proc.stderr], daemon=True).start()
    if not addr:
        sys.exit("server did not start")
    return proc, addr


CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate, on loopback


def call(addr, method, path, token=None, body=None):
    req = urllib.request.Request(f"https://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, context=CTX) as r:
        return json.loads(r.read() or b"null")


def wrk(work, addr, token, paths, connections=32):
    listing = os.path.join(work, "paths.txt")
    with open(listing, "w") as f:
        f.write("\n".join(paths) + "\n")
    script = os.path.join(work, "rotate.lua")
    with open(script, "w") as f:
        f.write(ROTATE_LUA)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{DURATION}s", "--latency", "-s", script,
                          "-H", f"Authorization: Bearer {token}", f"https://{addr}", "--", listing],
                         check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * unit[m.group(2)]
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p50 = float(m.group(1)) * unit[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, p50, p99, int(errors.group(1)) if errors else 0


def flood(addr, rate, seconds, results):
    """`rate` wrong-password logins per second for `seconds`, over 4 keep-alive connections."""
    stop = time.time() + seconds
    lock = threading.Lock()

    def worker(n):
        conn = http.client.HTTPSConnection(addr.split(":")[0], int(addr.split(":")[1]), context=CTX)
        interval = 4.0 / rate
        next_at = time.time()
        i = 0
        while time.time() < stop:
            body = json.dumps({"username": f"user{n}-{i % 500}", "password": "wrong-password"})
            try:
                conn.request("POST", "/api/v1/session", body, {"Content-Type": "application/json"})
                status = conn.getresponse()
                status.read()
                code = status.status
            except (OSError, http.client.HTTPException):
                conn = http.client.HTTPSConnection(addr.split(":")[0], int(addr.split(":")[1]), context=CTX)
                code = 0
            with lock:
                results[code] = results.get(code, 0) + 1
            i += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.time()))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    return threads


def run(work):
    local = os.path.join(work, "server-local")
    policy = write_fixture(local)
    proc, addr = start(local, policy)
    try:
        admin = call(addr, "POST", "/api/v1/session",
                     body={"username": "admin", "password": open(os.path.join(local, "initial-admin-password")).read().strip()})["token"]
        call(addr, "POST", "/api/v1/accounts", admin,
             {"name": "reader", "capabilities": ["login"], "password": "reader-password"})
        token = call(addr, "POST", "/api/v1/session", body={"username": "reader", "password": "reader-password"})["token"]
        visible = call(addr, "GET", "/api/v1/stagesets", token)["items"]
        gets = [f"/api/v1/stagesets/{s['metadata']['namespace']}/{s['metadata']['name']}" for s in visible]
        pages, cont = [], None
        while True:
            path = "/api/v1/stagesets?limit=100" + (f"&continue={cont}" if cont else "")
            pages.append(path)
            cont = call(addr, "GET", path, token)["metadata"]["continue"]
            if not cont:
                break
        assert len(visible) == 500, len(visible)
        print("\n### 6. API server: authenticated, RBAC-checked reads under wrk\n")
        print(f"1,000 StageSets in two projects; user `reader` may see {len(visible)} (one project); HTTPS (rustls, TLS 1.3) on loopback, wrk -t2 -c32 -d{DURATION}s on the same 2 cores.\n")
        print("| load | requests/s | p50 ms | p99 ms | non-2xx |")
        print("|---|---:|---:|---:|---:|")
        rps, p50, p99, bad = wrk(work, addr, token, gets)
        print(f"| GET /api/v1/stagesets/{{ns}}/{{name}} (500 visible, rotating) | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {bad} |")
        rps, p50, p99, bad = wrk(work, addr, token, pages)
        print(f"| GET /api/v1/stagesets?limit=100&continue=… ({len(pages)} pages, rotating) | {rps:,.0f} pages/s | {p50:.2f} | {p99:.2f} | {bad} |")
        results = {}
        threads = flood(addr, 200, float(DURATION) + 2, results)
        time.sleep(1)
        rps, p50, p99, bad = wrk(work, addr, token, gets)
        for t in threads:
            t.join()
        attempted = sum(results.values())
        print(f"| GET one StageSet during a login flood of 200 attempts/s | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {bad} |")
        print(f"\nLogin flood: {attempted} attempts in {float(DURATION) + 2:.0f} s "
              f"({attempted / (float(DURATION) + 2):.0f}/s); answers: "
              + ", ".join(f"{code or 'connection error'}: {n}" for code, n in sorted(results.items())))
    finally:
        proc.terminate()
        proc.wait()
