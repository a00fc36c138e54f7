//! Rendering the traffic model for four policy engines.
//!
//! The engine is always named, never detected, and the output is a pure function of the model:
//! the same model renders byte-identical YAML. Whatever an engine cannot express is an error
//! naming the workload and rule, never a silently dropped rule.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

use crate::cluster::NAMESPACE_NAME_LABEL;
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::model::{
    PeerKind, PortValue, TrafficModel, TrafficPeer, TrafficPort, TrafficRule, WorkloadTraffic,
};
use crate::policy::Protocol;

/// A policy engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `networking.k8s.io/v1` NetworkPolicy.
    Kubernetes,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    Cilium,
    /// `projectcalico.org/v3` NetworkPolicy.
    Calico,
    /// `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy.
    ClusterNetworkPolicy,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Self; 4] = [
        Self::Kubernetes,
        Self::Cilium,
        Self::Calico,
        Self::ClusterNetworkPolicy,
    ];

    /// Parses an engine name.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| Error::Invalid(format!("unknown engine {name:?} (expected kubernetes, cilium, calico or clusterNetworkPolicy)")))
    }

    /// The name used in flags and values.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Cilium => "cilium",
            Self::Calico => "calico",
            Self::ClusterNetworkPolicy => "clusterNetworkPolicy",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Label put on everything rendered.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sluice");
/// ClusterNetworkPolicy caps priorities here.
pub const CNP_MAX_PRIORITY: u32 = 1000;
/// ClusterNetworkPolicy caps rules per direction and peers per rule here.
pub const CNP_MAX_ITEMS: usize = 25;

/// Renders the model (validated or not) to objects for one engine.
pub fn render(model: &TrafficModel, engine: Engine) -> Result<Vec<Value>> {
    model.validate("model")?;
    let (allow_order, deny_order) = match engine {
        Engine::ClusterNetworkPolicy => (
            model.allow_order.min(CNP_MAX_PRIORITY),
            model.default_deny.order.min(CNP_MAX_PRIORITY),
        ),
        _ => (model.allow_order, model.default_deny.order),
    };
    if model.default_deny.enabled
        && matches!(engine, Engine::Calico | Engine::ClusterNetworkPolicy)
        && allow_order >= deny_order
    {
        return Err(Error::Invalid(format!(
            "the default-deny (order {deny_order}) must come after the allowlists (order {allow_order}) or it would override them: raise defaultDeny.order or lower allowOrder{}",
            if engine == Engine::ClusterNetworkPolicy {
                " (ClusterNetworkPolicy priorities stop at 1000)"
            } else {
                ""
            }
        )));
    }
    let mut out = Vec::new();
    if model.default_deny.enabled {
        for ns in model.namespaces() {
            out.push(default_deny(
                engine,
                &ns,
                deny_order,
                model.default_deny.egress,
            ));
        }
    }
    for w in &model.workloads {
        out.push(match engine {
            Engine::Kubernetes => kubernetes(w)?,
            Engine::Cilium => cilium(w)?,
            Engine::Calico => calico(w, allow_order)?,
            Engine::ClusterNetworkPolicy => cluster_network_policy(w, allow_order)?,
        });
    }
    Ok(out)
}

fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Some(ns) = namespace {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert("labels".into(), json!({ MANAGED_BY.0: MANAGED_BY.1 }));
    Value::Object(m)
}

fn unsupported(
    engine: Engine,
    w: &WorkloadTraffic,
    dir: &str,
    index: usize,
    what: &str,
    hint: &'static str,
) -> Error {
    Error::Unsupported {
        engine: engine.name(),
        what: format!(
            "{what} (workload {}/{}, {dir} rule {index})",
            w.namespace, w.name
        ),
        hint,
    }
}

fn directions(w: &WorkloadTraffic) -> [(&'static str, Option<&Vec<TrafficRule>>); 2] {
    [
        ("ingress", w.ingress.as_ref()),
        ("egress", w.egress.as_ref()),
    ]
}

fn peers_of<'a>(dir: &str, rule: &'a TrafficRule) -> &'a [TrafficPeer] {
    if dir == "ingress" {
        &rule.from
    } else {
        &rule.to
    }
}

fn types(w: &WorkloadTraffic) -> Value {
    let mut t = Vec::new();
    if w.ingress.is_some() {
        t.push("Ingress");
    }
    if w.egress.is_some() {
        t.push("Egress");
    }
    json!(t)
}

fn default_deny(engine: Engine, ns: &str, order: u32, egress: bool) -> Value {
    match engine {
        Engine::Kubernetes => {
            let types = if egress {
                json!(["Ingress", "Egress"])
            } else {
                json!(["Ingress"])
            };
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": metadata("default-deny", Some(ns)),
                   "spec": {"podSelector": {}, "policyTypes": types}})
        }
        Engine::Cilium => {
            // An empty rule selects nothing but puts every endpoint in default-deny; allowlists
            // add to it.
            let mut spec = json!({"endpointSelector": {}, "ingress": [{}]});
            if egress {
                spec["egress"] = json!([{}]);
            }
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                   "metadata": metadata("default-deny", Some(ns)), "spec": spec})
        }
        Engine::Calico => {
            let mut spec = json!({"order": order, "selector": "all()", "types": ["Ingress"], "ingress": [{"action": "Deny"}]});
            if egress {
                spec["types"] = json!(["Ingress", "Egress"]);
                spec["egress"] = json!([{"action": "Deny"}]);
            }
            json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                   "metadata": metadata("default-deny", Some(ns)), "spec": spec})
        }
        Engine::ClusterNetworkPolicy => {
            let mut spec = json!({
                "tier": "Baseline", "priority": order,
                "subject": {"namespaces": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}},
                "ingress": [{"name": "default-deny", "action": "Deny", "from": [{"namespaces": {}}]}],
            });
            if egress {
                spec["egress"] = json!([{"name": "default-deny", "action": "Deny",
                    "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}]);
            }
            json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
                   "metadata": metadata(&format!("default-deny-{ns}"), None), "spec": spec})
        }
    }
}

fn match_labels(labels: &Labels) -> Value {
    if labels.is_empty() {
        json!({})
    } else {
        json!({"matchLabels": labels})
    }
}

fn k8s_port(p: &TrafficPort) -> Value {
    let mut m = Map::new();
    m.insert("protocol".into(), json!(p.protocol().as_str()));
    match &p.port {
        PortValue::Number(n) => m.insert("port".into(), json!(n)),
        PortValue::Name(n) => m.insert("port".into(), json!(n)),
    };
    if let Some(end) = p.end_port {
        m.insert("endPort".into(), json!(end));
    }
    Value::Object(m)
}

fn kubernetes(w: &WorkloadTraffic) -> Result<Value> {
    let mut spec = Map::new();
    spec.insert("podSelector".into(), match_labels(&w.pod_selector));
    spec.insert("policyTypes".into(), types(w));
    for (dir, rules) in directions(w) {
        let Some(rules) = rules else { continue };
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let mut r = Map::new();
            let mut peers = Vec::new();
            for peer in peers_of(dir, rule) {
                peers.push(match peer.kind() {
                    PeerKind::Selector { pods, namespaces } => {
                        let mut p = Map::new();
                        if let Some(pods) = pods {
                            p.insert("podSelector".into(), match_labels(pods));
                        }
                        if let Some(ns) = namespaces {
                            p.insert("namespaceSelector".into(), match_labels(ns));
                        }
                        Value::Object(p)
                    }
                    PeerKind::Cidr { cidr, except } => {
                        let mut b = json!({"cidr": cidr});
                        if !except.is_empty() {
                            b["except"] = json!(except);
                        }
                        json!({"ipBlock": b})
                    }
                    PeerKind::Fqdn(name) => {
                        return Err(unsupported(
                            Engine::Kubernetes, w, dir, i, &format!("FQDN egress to {name}"),
                            "NetworkPolicy has no DNS names: use an ipBlock of the service's addresses, or the cilium engine",
                        ));
                    }
                });
            }
            if !peers.is_empty() {
                r.insert(
                    if dir == "ingress" { "from" } else { "to" }.into(),
                    Value::Array(peers),
                );
            }
            if !rule.ports.is_empty() {
                r.insert(
                    "ports".into(),
                    Value::Array(rule.ports.iter().map(k8s_port).collect()),
                );
            }
            out.push(Value::Object(r));
        }
        spec.insert(dir.into(), Value::Array(out));
    }
    Ok(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": metadata(&w.name, Some(&w.namespace)), "spec": spec}),
    )
}

const CILIUM_NS: &str = "k8s:io.kubernetes.pod.namespace";

fn cilium_endpoint(policy_ns: &str, pods: Option<&Labels>, namespaces: Option<&Labels>) -> Value {
    let mut labels = BTreeMap::new();
    for (k, v) in pods.into_iter().flatten() {
        labels.insert(k.clone(), v.clone());
    }
    let mut sel = Map::new();
    match namespaces {
        None => {
            labels.insert(CILIUM_NS.to_owned(), policy_ns.to_owned());
        }
        Some(ns) => {
            for (k, v) in ns {
                labels.insert(format!("k8s:io.cilium.k8s.namespace.labels.{k}"), v.clone());
            }
            // Without a namespace key Cilium would confine the selector to the policy's
            // namespace; this opens it to every namespace the labels pick.
            sel.insert(
                "matchExpressions".into(),
                json!([{"key": CILIUM_NS, "operator": "Exists"}]),
            );
        }
    }
    if !labels.is_empty() {
        sel.insert("matchLabels".into(), json!(labels));
    }
    // Keep matchLabels first for readability.
    let mut ordered = Map::new();
    for key in ["matchLabels", "matchExpressions"] {
        if let Some(v) = sel.remove(key) {
            ordered.insert(key.into(), v);
        }
    }
    Value::Object(ordered)
}

fn cilium_ports(ports: &[TrafficPort]) -> Value {
    json!([{"ports": ports.iter().map(|p| {
        let mut m = Map::new();
        m.insert("port".into(), match &p.port {
            PortValue::Number(n) => json!(n.to_string()),
            PortValue::Name(n) => json!(n),
        });
        if let Some(end) = p.end_port {
            m.insert("endPort".into(), json!(end));
        }
        m.insert("protocol".into(), json!(p.protocol().as_str()));
        Value::Object(m)
    }).collect::<Vec<_>>()}])
}

fn cilium(w: &WorkloadTraffic) -> Result<Value> {
    let mut spec = Map::new();
    spec.insert("endpointSelector".into(), match_labels(&w.pod_selector));
    let mut needs_dns_visibility = false;
    for (dir, rules) in directions(w) {
        let Some(rules) = rules else { continue };
        let (endpoints_key, cidr_key, entities_key) = if dir == "ingress" {
            ("fromEndpoints", "fromCIDRSet", "fromEntities")
        } else {
            ("toEndpoints", "toCIDRSet", "toEntities")
        };
        let mut out = Vec::new();
        if rules.is_empty() {
            // Managed with nothing allowed: an empty rule keeps the endpoints in default-deny.
            out.push(json!({}));
        }
        for rule in rules {
            // One Cilium rule per kind of peer keeps the meaning obvious: peers OR, ports AND.
            let mut endpoints = Vec::new();
            let mut cidrs = Vec::new();
            let mut fqdns = Vec::new();
            for peer in peers_of(dir, rule) {
                match peer.kind() {
                    PeerKind::Selector { pods, namespaces } => {
                        endpoints.push(cilium_endpoint(&w.namespace, pods, namespaces))
                    }
                    PeerKind::Cidr { cidr, except } => {
                        let mut c = json!({"cidr": cidr});
                        if !except.is_empty() {
                            c["except"] = json!(except);
                        }
                        cidrs.push(c);
                    }
                    PeerKind::Fqdn(name) => fqdns.push(if name.contains('*') {
                        json!({"matchPattern": name})
                    } else {
                        json!({"matchName": name})
                    }),
                }
            }
            let mut groups: Vec<(&str, Value)> = Vec::new();
            if peers_of(dir, rule).is_empty() {
                groups.push((entities_key, json!(["all"])));
            }
            if !endpoints.is_empty() {
                groups.push((endpoints_key, Value::Array(endpoints)));
            }
            if !cidrs.is_empty() {
                groups.push((cidr_key, Value::Array(cidrs)));
            }
            if !fqdns.is_empty() {
                needs_dns_visibility = true;
                groups.push(("toFQDNs", Value::Array(fqdns)));
            }
            for (key, peers) in groups {
                let mut r = Map::new();
                r.insert(key.into(), peers);
                if !rule.ports.is_empty() {
                    r.insert("toPorts".into(), cilium_ports(&rule.ports));
                }
                out.push(Value::Object(r));
            }
        }
        if dir == "egress" && needs_dns_visibility {
            // toFQDNs only learns addresses from DNS answers the proxy sees.
            out.insert(0, json!({
                "toEndpoints": [{"matchLabels": {CILIUM_NS: "kube-system", "k8s:k8s-app": "kube-dns"}}],
                "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}], "rules": {"dns": [{"matchPattern": "*"}]}}],
            }));
        }
        spec.insert(dir.into(), Value::Array(out));
    }
    Ok(
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
              "metadata": metadata(&w.name, Some(&w.namespace)), "spec": spec}),
    )
}

/// A Calico selector expression for an equality label set.
fn calico_selector(labels: &Labels) -> String {
    if labels.is_empty() {
        return "all()".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k} == '{v}'"))
        .collect::<Vec<_>>()
        .join(" && ")
}

fn calico_port(p: &TrafficPort) -> Value {
    match (&p.port, p.end_port) {
        (PortValue::Number(a), Some(b)) if b != *a => json!(format!("{a}:{b}")),
        (PortValue::Number(a), _) => json!(a),
        (PortValue::Name(n), _) => json!(n),
    }
}

fn calico(w: &WorkloadTraffic, order: u32) -> Result<Value> {
    let mut spec = Map::new();
    spec.insert("order".into(), json!(order));
    spec.insert("selector".into(), json!(calico_selector(&w.pod_selector)));
    spec.insert("types".into(), types(w));
    for (dir, rules) in directions(w) {
        let Some(rules) = rules else { continue };
        let (peer_key, port_key) = if dir == "ingress" {
            ("source", "destination")
        } else {
            ("destination", "destination")
        };
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let mut entities = Vec::new();
            for peer in peers_of(dir, rule) {
                entities.push(match peer.kind() {
                    PeerKind::Selector { pods, namespaces } => {
                        let mut e = Map::new();
                        if let Some(pods) = pods {
                            e.insert("selector".into(), json!(calico_selector(pods)));
                        }
                        if let Some(ns) = namespaces {
                            e.insert("namespaceSelector".into(), json!(calico_selector(ns)));
                        }
                        e
                    }
                    PeerKind::Cidr { cidr, except } => {
                        let mut e = Map::new();
                        e.insert("nets".into(), json!([cidr]));
                        if !except.is_empty() {
                            e.insert("notNets".into(), json!(except));
                        }
                        e
                    }
                    PeerKind::Fqdn(name) => {
                        return Err(unsupported(
                            Engine::Calico, w, dir, i, &format!("FQDN egress to {name}"),
                            "open-source Calico has no domain-name rules (Calico Enterprise does): use a cidr, or the cilium engine",
                        ));
                    }
                });
            }
            if entities.is_empty() {
                entities.push(Map::new());
            }
            // Calico rules carry one protocol each: split the ports by protocol.
            let mut by_protocol: BTreeMap<Protocol, Vec<&TrafficPort>> = BTreeMap::new();
            for p in &rule.ports {
                by_protocol.entry(p.protocol()).or_default().push(p);
            }
            let port_groups: Vec<(Option<Protocol>, Vec<&TrafficPort>)> = if by_protocol.is_empty()
            {
                vec![(None, Vec::new())]
            } else {
                by_protocol.into_iter().map(|(k, v)| (Some(k), v)).collect()
            };
            for entity in &entities {
                for (protocol, ports) in &port_groups {
                    let mut r = Map::new();
                    r.insert("action".into(), json!("Allow"));
                    if let Some(p) = protocol {
                        r.insert("protocol".into(), json!(p.as_str()));
                    }
                    let mut peer = entity.clone();
                    let mut dest = if peer_key == port_key {
                        std::mem::take(&mut peer)
                    } else {
                        Map::new()
                    };
                    if !ports.is_empty() {
                        dest.insert(
                            "ports".into(),
                            Value::Array(ports.iter().map(|p| calico_port(p)).collect()),
                        );
                    }
                    if peer_key != port_key && !peer.is_empty() {
                        r.insert(peer_key.into(), Value::Object(peer));
                    }
                    if !dest.is_empty() {
                        r.insert(port_key.into(), Value::Object(dest));
                    }
                    out.push(Value::Object(r));
                }
            }
        }
        spec.insert(dir.into(), Value::Array(out));
    }
    Ok(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
              "metadata": metadata(&w.name, Some(&w.namespace)), "spec": spec}),
    )
}

fn cnp_protocols(ports: &[TrafficPort]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                let key = p.protocol().as_str().to_lowercase();
                match (&p.port, p.end_port) {
                    (PortValue::Name(n), _) => json!({"destinationNamedPort": n}),
                    (PortValue::Number(a), Some(b)) if b > *a => {
                        json!({ key: {"destinationPort": {"range": {"start": a, "end": b}}} })
                    }
                    (PortValue::Number(a), _) => json!({ key: {"destinationPort": {"number": a}} }),
                }
            })
            .collect(),
    )
}

fn cluster_network_policy(w: &WorkloadTraffic, priority: u32) -> Result<Value> {
    let engine = Engine::ClusterNetworkPolicy;
    let mut spec = Map::new();
    spec.insert("tier".into(), json!("Baseline"));
    spec.insert("priority".into(), json!(priority));
    spec.insert(
        "subject".into(),
        json!({"pods": {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: w.namespace}},
            "podSelector": match_labels(&w.pod_selector),
        }}),
    );
    for (dir, rules) in directions(w) {
        let Some(rules) = rules else { continue };
        if rules.len() > CNP_MAX_ITEMS {
            return Err(unsupported(
                engine,
                w,
                dir,
                CNP_MAX_ITEMS,
                &format!("more than {CNP_MAX_ITEMS} rules"),
                "split the workload's traffic or merge rules",
            ));
        }
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            let mut peers = Vec::new();
            for peer in peers_of(dir, rule) {
                peers.push(match peer.kind() {
                    PeerKind::Selector { pods: None, namespaces: Some(ns) } => json!({"namespaces": match_labels(ns)}),
                    PeerKind::Selector { pods, namespaces } => {
                        let ns = match namespaces {
                            Some(ns) => match_labels(ns),
                            None => json!({"matchLabels": {NAMESPACE_NAME_LABEL: w.namespace}}),
                        };
                        json!({"pods": {"namespaceSelector": ns, "podSelector": pods.map(match_labels).unwrap_or_else(|| json!({}))}})
                    }
                    PeerKind::Cidr { cidr, except } => {
                        if dir == "ingress" {
                            return Err(unsupported(engine, w, dir, i, &format!("ingress from the CIDR {cidr}"),
                                "ClusterNetworkPolicy ingress peers are namespaces and pods only: use the kubernetes, cilium or calico engine"));
                        }
                        if !except.is_empty() {
                            return Err(unsupported(engine, w, dir, i, &format!("`except` inside {cidr}"),
                                "ClusterNetworkPolicy networks have no exceptions: list the allowed sub-ranges instead"));
                        }
                        if rule.ports.iter().any(|p| matches!(p.port, PortValue::Name(_))) {
                            return Err(unsupported(engine, w, dir, i, "a named port towards a CIDR",
                                "networks have no named ports: use the port number"));
                        }
                        json!({"networks": [cidr]})
                    }
                    PeerKind::Fqdn(name) => {
                        return Err(unsupported(engine, w, dir, i, &format!("FQDN egress to {name}"),
                            "sluice renders ClusterNetworkPolicy without the experimental domainNames peer: use a cidr, or the cilium engine"));
                    }
                });
            }
            if peers.is_empty() {
                peers.push(json!({"namespaces": {}}));
                if dir == "egress" {
                    peers.push(json!({"networks": ["0.0.0.0/0", "::/0"]}));
                }
            }
            if peers.len() > CNP_MAX_ITEMS || rule.ports.len() > CNP_MAX_ITEMS {
                return Err(unsupported(
                    engine,
                    w,
                    dir,
                    i,
                    &format!("more than {CNP_MAX_ITEMS} peers or ports in one rule"),
                    "split the rule",
                ));
            }
            let mut r = Map::new();
            r.insert("name".into(), json!(format!("{}-{dir}-{i}", w.name)));
            r.insert("action".into(), json!("Accept"));
            r.insert(
                if dir == "ingress" { "from" } else { "to" }.into(),
                Value::Array(peers),
            );
            if !rule.ports.is_empty() {
                r.insert("protocols".into(), cnp_protocols(&rule.ports));
            }
            out.push(Value::Object(r));
        }
        spec.insert(dir.into(), Value::Array(out));
    }
    Ok(
        json!({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
              "metadata": metadata(&format!("{}-{}", w.namespace, w.name), None), "spec": spec}),
    )
}

/// Renders to a YAML stream.
pub fn render_yaml(model: &TrafficModel, engine: Engine) -> Result<String> {
    let objects = render(model, engine)?;
    let mut out = String::new();
    sluice_manifest::write_yaml_stream(&objects, &mut out);
    Ok(out)
}
