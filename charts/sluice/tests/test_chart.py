"""Tests of the Helm chart with the real Helm engine (helm-python-sdk, Helm's Go SDK).

Run: python3 -m unittest discover -s charts/sluice/tests   (scripts/test does, with the
`sluice` binary built; SLUICE_BIN overrides its path).

What they prove:
- every combination of engine x default-deny x egress x webhook x gate renders, lints clean,
  and renders byte-identically twice;
- core objects validate against the Kubernetes schemas (kubernetes-validate); Cilium, Calico
  and ClusterNetworkPolicy objects are checked structurally (no CRD schemas ship for them);
- the kubernetes-engine policies, evaluated by `sluice netpol check` on a synthetic cluster,
  allow exactly the flows of docs/network-policy.md's tables and nothing else;
- for the same inputs, the chart's policies and `sluice netpol render` agree, for all four
  engines;
- bad values fail with a clear message (schema typos and types, egress without an apiserver
  ipBlock, a default-deny that would override the allowlists).
"""
import copy
import itertools
import json
import os
import re
import subprocess
import tempfile
import unittest

import helm_python as helm
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(CHART))
SLUICE = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "target", "debug", "sluice"))
RELEASE, NAMESPACE = "rel", "sluice-system"
FULL = "rel-sluice"
KUBE_VERSION = "1.33.0"
ENGINES = ["kubernetes", "cilium", "calico", "clusterNetworkPolicy"]
APISERVER = "10.0.0.1"


def deep_merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render_text(values):
    """The rendered chart as one YAML stream, in a stable template order."""
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return "".join(f"---\n# Source: {p}\n{rendered[p]}" for p in sorted(rendered)
                   if not p.endswith("NOTES.txt") and rendered[p].strip())


def render(values):
    return [d for d in yaml.safe_load_all(render_text(values)) if d]


def policies(objects):
    kinds = {"NetworkPolicy", "CiliumNetworkPolicy", "ClusterNetworkPolicy"}
    return [o for o in objects if o["kind"] in kinds]


def combo_values(engine, default_deny, egress, webhook, gate):
    values = {
        "networkPolicy": {"enabled": True, "engine": engine,
                          "defaultDeny": {"enabled": default_deny},
                          "egress": {"enabled": egress}},
        "webhook": {"enabled": webhook},
        "gate": {"enabled": gate},
    }
    if egress:
        values["networkPolicy"]["egress"]["apiserver"] = {"cidrs": [f"{APISERVER}/32"]}
    return values


COMBOS = list(itertools.product(ENGINES, [False, True], [False, True], [False, True], [False, True]))


def sluice(*args, stdin=None):
    result = subprocess.run([SLUICE, *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"sluice {' '.join(args)} failed: {result.stderr}")
    return result.stdout


class RenderMatrix(unittest.TestCase):
    def test_every_combination_renders_lints_and_is_deterministic(self):
        for combo in COMBOS:
            with self.subTest(combo=combo):
                values = combo_values(*combo)
                first, second = render_text(values), render_text(values)
                self.assertEqual(first, second, "same values, different bytes")
                report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE,
                                   kube_version=f"v{KUBE_VERSION}")
                problems = [m for m in report["messages"] if m["severity"] >= 2]
                self.assertEqual(problems, [], report)
                self.assertEqual(report.get("errors") or [], [])
                objects = render(values)
                engine, default_deny, egress, webhook, gate = combo
                pols = policies(objects)
                self.assertEqual(len(pols), 3 + (1 if default_deny else 0), [p["metadata"]["name"] for p in pols])
                for obj in objects:
                    check_object(self, obj)

    def test_network_policy_is_off_by_default(self):
        objects = render({})
        self.assertEqual(policies(objects), [])
        self.assertFalse(any(o["kind"].endswith("NetworkPolicy") for o in objects))


# Allowed keys per engine: the structural check for kinds without a schema here.
CILIUM_RULE_KEYS = {"fromEndpoints", "fromCIDRSet", "fromEntities", "toEndpoints", "toCIDRSet",
                    "toEntities", "toFQDNs", "toPorts"}
CALICO_RULE_KEYS = {"action", "protocol", "source", "destination"}
CNP_RULE_KEYS = {"name", "action", "from", "to", "protocols"}


def check_object(test, obj):
    kind = obj["kind"]
    if kind == "CiliumNetworkPolicy":
        test.assertEqual(obj["apiVersion"], "cilium.io/v2")
        spec = obj["spec"]
        test.assertLessEqual(set(spec), {"endpointSelector", "ingress", "egress"})
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            test.assertLessEqual(set(rule), CILIUM_RULE_KEYS, rule)
            for tp in rule.get("toPorts", []):
                for p in tp["ports"]:
                    test.assertIsInstance(p["port"], str)
                    test.assertIn(p["protocol"], {"TCP", "UDP", "SCTP", "ANY"})
    elif kind == "NetworkPolicy" and obj["apiVersion"] == "projectcalico.org/v3":
        spec = obj["spec"]
        test.assertLessEqual(set(spec), {"order", "selector", "types", "ingress", "egress"})
        test.assertIsInstance(spec["order"], int)
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            test.assertLessEqual(set(rule), CALICO_RULE_KEYS, rule)
            test.assertIn(rule["action"], {"Allow", "Deny"})
            for side in ("source", "destination"):
                test.assertLessEqual(set(rule.get(side, {})),
                                     {"selector", "namespaceSelector", "nets", "notNets", "ports"})
    elif kind == "ClusterNetworkPolicy":
        test.assertEqual(obj["apiVersion"], "policy.networking.k8s.io/v1alpha2")
        test.assertNotIn("namespace", obj["metadata"])
        spec = obj["spec"]
        test.assertEqual(spec["tier"], "Baseline")
        test.assertTrue(0 <= spec["priority"] <= 1000)
        test.assertEqual(len(spec["subject"]), 1)
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            test.assertLessEqual(set(rule), CNP_RULE_KEYS, rule)
            test.assertIn(rule["action"], {"Accept", "Deny", "Pass"})
            test.assertLessEqual(len(rule["name"]), 100)
            test.assertTrue(1 <= len(rule.get("from", rule.get("to", []))) <= 25)
    else:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


class Workloads(unittest.TestCase):
    def test_restricted_pod_security_and_least_privilege(self):
        objects = render({"controller": {"replicas": 2, "podDisruptionBudget": {"enabled": True}}})
        deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
        self.assertEqual(set(deployments), {f"{FULL}-controller", f"{FULL}-repo-server", f"{FULL}-server"})
        for d in deployments.values():
            pod = d["spec"]["template"]["spec"]
            self.assertTrue(pod["securityContext"]["runAsNonRoot"])
            self.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
            for c in pod["containers"]:
                sc = c["securityContext"]
                self.assertFalse(sc["allowPrivilegeEscalation"])
                self.assertTrue(sc["readOnlyRootFilesystem"])
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                self.assertIn("livenessProbe", c)
                self.assertIn("readinessProbe", c)
                self.assertIn("limits", c["resources"])
        repo = deployments[f"{FULL}-repo-server"]["spec"]["template"]["spec"]
        self.assertIs(repo["automountServiceAccountToken"], False)
        accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
        self.assertIs(accounts[f"{FULL}-repo-server"]["automountServiceAccountToken"], False)
        self.assertIn("--leader-elect", deployments[f"{FULL}-controller"]["spec"]["template"]["spec"]["containers"][0]["args"])
        pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
        self.assertEqual([p["metadata"]["name"] for p in pdbs], [f"{FULL}-controller"])
        # Nothing but the opt-in grants cluster-admin; nothing grants wildcard verbs.
        for o in objects:
            if o["kind"] in ("ClusterRole", "Role"):
                for rule in o["rules"]:
                    self.assertNotIn("*", rule["verbs"])
                    self.assertNotIn("*", rule["resources"])
            if o["kind"] == "ClusterRoleBinding":
                self.assertNotEqual(o["roleRef"]["name"], "cluster-admin")
        admin = render({"controller": {"rbac": {"clusterAdmin": True}}})
        binding = [o for o in admin if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] == f"{FULL}-controller"]
        self.assertEqual(binding[0]["roleRef"]["name"], "cluster-admin")

    def test_crds_are_the_ones_sluice_generates(self):
        with open(os.path.join(CHART, "crds", "sluice-crds.yaml"), encoding="utf-8") as f:
            shipped = f.read()
        self.assertEqual(shipped, sluice("crds"), "charts/sluice/crds is stale: run `sluice crds > charts/sluice/crds/sluice-crds.yaml`")
        for crd in yaml.safe_load_all(shipped):
            if crd:
                kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


class ChartMatchesBinary(unittest.TestCase):
    def test_every_controller_flag_the_chart_passes_exists(self):
        help_text = sluice("controller", "--help")
        for values in ({}, {"webhook": {"enabled": True}, "gate": {"enabled": True}},
                       {"repoServer": {"tlsSecretName": "repo-tls"}}):
            objects = render(values)
            controller = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-controller")][0]
            args = controller["spec"]["template"]["spec"]["containers"][0]["args"]
            self.assertEqual(args[0], "controller")
            for arg in args[1:]:
                flag = arg.split("=", 1)[0]
                self.assertRegex(help_text, re.escape(flag) + r"[ \n]",
                                 f"the chart passes {flag}, which `sluice controller` does not know")


    def test_every_server_and_repo_server_flag_the_chart_passes_exists(self):
        for component in ("server", "repo-server"):
            help_text = sluice(component, "--help")
            for values in ({}, {"repoServer": {"tlsSecretName": "repo-tls"}, "server": {"tlsSecretName": "api-tls"}}):
                objects = render(values)
                deployment = [o for o in objects if o["kind"] == "Deployment"
                              and o["metadata"]["name"] == f"{FULL}-{component}"][0]
                args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                self.assertEqual(args[0], component)
                for arg in args[1:]:
                    flag = arg.split("=", 1)[0]
                    self.assertRegex(help_text, re.escape(flag) + r"[ \n]",
                                     f"the chart passes {flag}, which `sluice {component}` does not know")


class BadValues(unittest.TestCase):
    def assert_fails(self, values, *needles):
        with self.assertRaises(Exception) as ctx:
            render_text(values)
        message = str(ctx.exception)
        for needle in needles:
            self.assertIn(needle, message)

    def test_schema_rejects_typos_and_wrong_types(self):
        self.assert_fails({"networkPolicy": {"enabeld": True}}, "enabeld")
        self.assert_fails({"networkPolicy": {"engine": "weave"}}, "engine")
        self.assert_fails({"ports": {"metrics": "8080"}}, "metrics")
        self.assert_fails({"ports": {"metrics": 70000}}, "metrics")
        self.assert_fails({"controller": {"replicas": 0}}, "replicas")
        self.assert_fails({"networkPolicy": {"egress": {"apiserver": {"cidrs": ["not-a-cidr"]}}}}, "cidrs")

    def test_egress_without_an_apiserver_ipblock_fails_the_render(self):
        for engine in ENGINES:
            with self.subTest(engine=engine):
                self.assert_fails({"networkPolicy": {"enabled": True, "engine": engine, "egress": {"enabled": True}}},
                                  "cut the controller off", "apiserver.cidrs")
        # The kubernetes engine also accepts the apiserver as an ipBlock in the verbatim rules.
        ok = {"networkPolicy": {"enabled": True, "egress": {"enabled": True, "to": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}],
        }, "server": {"egress": {"to": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}]}}}}
        render_text(ok)
        self.assert_fails({"networkPolicy": {"enabled": True, "egress": {"enabled": True, "to": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}]}}}, "cut the server off")

    def test_a_default_deny_that_would_win_fails(self):
        for engine in ("calico", "clusterNetworkPolicy"):
            with self.subTest(engine=engine):
                self.assert_fails({"networkPolicy": {"enabled": True, "engine": engine, "allowOrder": 3000,
                                                     "defaultDeny": {"enabled": True}}}, "must come after the allowlists")


class Passthrough(unittest.TestCase):
    def controller_policy(self, values):
        for o in policies(render(values)):
            if o["metadata"]["name"].endswith("-controller"):
                return o["spec"]
        raise AssertionError("no controller policy")

    def test_verbatim_rules_are_appended_for_each_engine(self):
        extra_ingress = {"ports": [{"protocol": "TCP", "port": 7000}],
                         "from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]}
        spec = self.controller_policy({"networkPolicy": {"enabled": True, "additionalIngress": [extra_ingress]}})
        self.assertEqual(spec["ingress"][-1], extra_ingress)
        cilium_rule = {"fromEndpoints": [{"matchLabels": {"app.kubernetes.io/name": "flagger"}}]}
        cilium_egress = {"toFQDNs": [{"matchName": "bucket.example.com"}],
                         "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}
        spec = self.controller_policy({"networkPolicy": {
            "enabled": True, "engine": "cilium",
            "egress": {"enabled": True, "apiserver": {"cidrs": ["10.0.0.1/32"]}},
            "cilium": {"ingress": [cilium_rule], "egress": [cilium_egress]}}})
        self.assertEqual(spec["ingress"][-1], cilium_rule)
        self.assertEqual(spec["egress"][-1], cilium_egress)
        calico_rule = {"action": "Allow", "protocol": "TCP", "destination": {"ports": [7000]}}
        spec = self.controller_policy({"networkPolicy": {"enabled": True, "engine": "calico",
                                                         "calico": {"ingress": [calico_rule]}}})
        self.assertEqual(spec["ingress"][-1], calico_rule)
        # The kubernetes-only knobs do not leak into other engines' policies.
        spec = self.controller_policy({"networkPolicy": {"enabled": True, "engine": "calico",
                                                         "additionalIngress": [extra_ingress]}})
        self.assertNotIn(extra_ingress, spec["ingress"])


# The synthetic cluster of the semantics test.
PODS = {
    "controller": (NAMESPACE, {"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": RELEASE,
                               "app.kubernetes.io/component": "controller"},
                   [("metrics", 8080), ("gate", 8082), ("webhook", 9443)]),
    "repo-server": (NAMESPACE, {"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": RELEASE,
                                "app.kubernetes.io/component": "repo-server"}, [("render", 8081)]),
    "server": (NAMESPACE, {"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": RELEASE,
                           "app.kubernetes.io/component": "server"}, [("https", 8443)]),
    "neighbour": (NAMESPACE, {"app": "neighbour"}, [("http", 80)]),
    "prometheus": ("monitoring", {"app": "prometheus"}, [("http", 9090)]),
    "flagger": ("flagger-system", {"app": "flagger"}, [("http", 8080)]),
    "random": ("default", {"app": "random"}, [("http", 80)]),
    "coredns": ("kube-system", {"k8s-app": "kube-dns"}, [("dns", 53)]),
}


def cluster_json():
    pods = []
    for i, (name, (ns, labels, ports)) in enumerate(PODS.items()):
        pods.append({"namespace": ns, "name": name, "labels": labels, "ip": f"10.1.0.{i + 1}",
                     "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]})
    return {"namespaces": {}, "pods": pods}


def ref(name):
    if name in PODS:
        return f"{PODS[name][0]}/{name}"
    return name  # an IP address


def expected_flows(default_deny, egress, webhook, gate, knobs):
    """(from, to, port, protocol) -> allowed, straight from docs/network-policy.md's tables:
    a flow passes when the source's egress table and the destination's ingress table both
    allow it."""

    def egress_allows(src, dst, port):
        if src in ("controller", "server"):
            return (not egress) or (dst == "coredns" and port == 53) \
                or (dst == APISERVER and port in (443, 6443)) or (dst == "repo-server" and port == 8081)
        if src == "repo-server":
            return (not egress) or (dst == "coredns" and port == 53)
        if src == "neighbour":
            return not (default_deny and egress)
        return True  # pods in other namespaces and addresses outside the cluster

    def ingress_allows(src, dst, port):
        if dst == "controller":
            if port == 8080:
                return (not knobs) or src == "prometheus"
            if port == 8082:
                return gate and ((not knobs) or src == "flagger")
            if port == 9443:
                return webhook  # the apiserver is not a pod: always open when enabled
            return False
        if dst == "repo-server":
            return port == 8081 and src in ("controller", "server")
        if dst == "server":
            return port == 8443
        if dst == "neighbour":
            return not default_deny
        return True

    sources = ["controller", "repo-server", "server", "neighbour", "prometheus", "flagger", "random", APISERVER]
    targets = [("controller", 8080), ("controller", 8082), ("controller", 9443), ("controller", 1234),
               ("repo-server", 8081), ("repo-server", 8082), ("server", 8443), ("server", 8080),
               ("neighbour", 80), ("random", 80), ("coredns", 53), (APISERVER, 443), (APISERVER, 6443),
               ("203.0.113.5", 443)]
    flows = {}
    for src in sources:
        for dst, port in targets:
            if src == dst or (src not in PODS and dst not in PODS):
                continue
            for proto in (["UDP", "TCP"] if port == 53 else ["TCP"]):
                flows[(src, dst, port, proto)] = egress_allows(src, dst, port) and ingress_allows(src, dst, port)
    return flows


class Semantics(unittest.TestCase):
    def test_kubernetes_policies_allow_exactly_the_documented_flows(self):
        with tempfile.TemporaryDirectory() as work:
            cluster = os.path.join(work, "cluster.json")
            with open(cluster, "w", encoding="utf-8") as f:
                json.dump(cluster_json(), f)
            for default_deny, egress, webhook, gate, knobs in itertools.product([False, True], repeat=5):
                with self.subTest(default_deny=default_deny, egress=egress, webhook=webhook, gate=gate, knobs=knobs):
                    values = combo_values("kubernetes", default_deny, egress, webhook, gate)
                    if knobs:
                        values["networkPolicy"]["metrics"] = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}
                        values["networkPolicy"]["gate"] = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flagger-system"}}}]}
                    path = os.path.join(work, "policies.yaml")
                    with open(path, "w", encoding="utf-8") as f:
                        yaml.safe_dump_all(policies(render(values)), f)
                    flows = expected_flows(default_deny, egress, webhook, gate, knobs)
                    probes = [{"from": ref(a), "to": ref(b), "port": p, "protocol": proto} for (a, b, p, proto) in flows]
                    probes_path = os.path.join(work, "probes.json")
                    with open(probes_path, "w", encoding="utf-8") as f:
                        json.dump(probes, f)
                    results = json.loads(sluice("netpol", "check", "--cluster", cluster, "--policies", path,
                                                "--probes", probes_path, "--output", "json"))
                    wrong = [(r["from"], r["to"], r["port"], r["protocol"], "allowed" if r["allowed"] else "denied")
                             for r, want in zip(results, flows.values()) if r["allowed"] != want]
                    self.assertEqual(wrong, [], "flows that disagree with the documented tables")


def model_for(values):
    """The traffic model `sluice netpol render` reads, built from the same values the chart reads."""
    merged = helm.Chart.load(CHART).merge_values(values)
    np, ports = merged["networkPolicy"], merged["ports"]
    sel = lambda c: {"app.kubernetes.io/component": c, "app.kubernetes.io/instance": RELEASE,
                     "app.kubernetes.io/name": "sluice"}
    k8s = np["engine"] == "kubernetes"

    def peer(p):
        out = {}
        if "podSelector" in p:
            out["pods"] = p["podSelector"].get("matchLabels", {})
        if "namespaceSelector" in p:
            out["namespaces"] = p["namespaceSelector"].get("matchLabels", {})
        if "ipBlock" in p:
            out["cidr"] = p["ipBlock"]["cidr"]
        return out

    def rule(port, raw_from=()):
        r = {"ports": [{"port": port, "protocol": "TCP"}]}
        if k8s and raw_from:
            r["from"] = [peer(p) for p in raw_from]
        return r

    dns = {"to": [{"namespaces": {"kubernetes.io/metadata.name": np["egress"]["dnsNamespace"]}, "pods": {"k8s-app": "kube-dns"}}],
           "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    api = {"to": [{"cidr": c} for c in np["egress"]["apiserver"]["cidrs"]],
           "ports": [{"port": p, "protocol": "TCP"} for p in np["egress"]["apiserver"]["ports"]]}
    repo = {"to": [{"pods": sel("repo-server")}], "ports": [{"port": ports["render"], "protocol": "TCP"}]}

    def egress(*rules):
        out = [dns] if np["egress"]["dns"] else []
        return out + [r for r in rules if r["to"]]

    controller = {"name": f"{FULL}-controller", "namespace": NAMESPACE, "podSelector": sel("controller"),
                  "ingress": [rule(ports["metrics"], np["metrics"]["from"])]}
    if merged["webhook"]["enabled"]:
        controller["ingress"].append(rule(ports["webhook"], np["webhook"]["from"]))
    if merged["gate"]["enabled"]:
        controller["ingress"].append(rule(ports["gate"], np["gate"]["from"]))
    callers = [{"pods": sel("controller")}] + ([{"pods": sel("server")}] if merged["server"]["enabled"] else [])
    repo_server = {"name": f"{FULL}-repo-server", "namespace": NAMESPACE, "podSelector": sel("repo-server"),
                   "ingress": [{"from": callers, "ports": [{"port": ports["render"], "protocol": "TCP"}]}]}
    server = {"name": f"{FULL}-server", "namespace": NAMESPACE, "podSelector": sel("server"),
              "ingress": [rule(ports["https"], np["server"]["https"]["from"])]}
    if np["egress"]["enabled"]:
        controller["egress"] = egress(api, repo)
        repo_server["egress"] = egress()
        server["egress"] = egress(api, repo)
    workloads = [controller, repo_server] + ([server] if merged["server"]["enabled"] else [])
    return {"defaultDeny": {"enabled": np["defaultDeny"]["enabled"], "order": np["defaultDeny"]["order"],
                            "egress": np["egress"]["enabled"]},
            "allowOrder": np["allowOrder"], "workloads": workloads}


def comparable(objects):
    """Policies without the metadata that legitimately differs (Helm's labels; release-prefixed
    default-deny names), keyed so the order of documents does not matter."""
    out = {}
    for o in objects:
        name = o["metadata"]["name"]
        if "default-deny" in name:
            name = "default-deny"
        out[(o["apiVersion"], o["kind"], name)] = o["spec"]
    return out


class AgreesWithSluiceNetpolRender(unittest.TestCase):
    def test_chart_and_renderer_agree(self):
        knob_sets = [{}, {"metrics": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
                          "gate": {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "flagger-system"}},
                                             "podSelector": {"matchLabels": {"app": "flagger"}}}]},
                          "server": {"https": {"from": [{"podSelector": {"matchLabels": {"app": "ui"}}}]}}}]
        with tempfile.TemporaryDirectory() as work:
            for combo, knobs, server_on in itertools.product(COMBOS, knob_sets, [True, False]):
                with self.subTest(combo=combo, knobs=bool(knobs), server=server_on):
                    values = deep_merge(combo_values(*combo), {"networkPolicy": knobs, "server": {"enabled": server_on}})
                    chart = comparable(policies(render(values)))
                    model = os.path.join(work, "model.json")
                    with open(model, "w", encoding="utf-8") as f:
                        json.dump(model_for(values), f)
                    ours = comparable(d for d in yaml.safe_load_all(sluice("netpol", "render", "-f", model, "--engine", combo[0])) if d)
                    self.assertEqual(set(chart), set(ours))
                    for key in chart:
                        self.assertEqual(chart[key], ours[key], key)


if __name__ == "__main__":
    unittest.main()
