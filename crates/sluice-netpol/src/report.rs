//! Probes in, verdicts out: the JSON contract of `netpol check` and the prose of `explain`.

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cidr::parse_ip;
use crate::cluster::{Cluster, NAMESPACE_NAME_LABEL};
use crate::docs::PolicySet;
use crate::error::{Error, Result};
use crate::eval::{Endpoint, Flow, SideVerdict, Verdict};
use crate::matrix::Reachability;
use crate::policy::{Direction, Peer, Protocol};

/// A probe as written in `PROBES.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeSpec {
    /// `namespace/pod` or an IP address.
    pub from: String,
    /// `namespace/pod` or an IP address.
    pub to: String,
    /// Destination port.
    pub port: u32,
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
}

/// A probe resolved against the cluster.
#[derive(Debug, Clone)]
pub struct Probe {
    /// As written.
    pub spec: ProbeSpec,
    /// Resolved.
    pub flow: Flow,
}

/// Reads `PROBES.json` and resolves every probe against the cluster.
pub fn parse_probes(text: &str, origin: &str, cluster: &Cluster) -> Result<Vec<Probe>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let specs: Vec<ProbeSpec> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        Error::field(origin, "probes", path, e.into_inner().to_string())
    })?;
    specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let where_ = format!("{origin}: probe {i}");
            let flow = resolve_flow(
                cluster,
                &spec.from,
                &spec.to,
                spec.port,
                spec.protocol.as_deref(),
            )
            .map_err(|m| Error::Flow(format!("{where_}: {m}")))?;
            Ok(Probe { spec, flow })
        })
        .collect()
}

/// Resolves `from`/`to` (pod keys or IPs), port and protocol into a flow.
pub fn resolve_flow(
    cluster: &Cluster,
    from: &str,
    to: &str,
    port: u32,
    protocol: Option<&str>,
) -> Result<Flow, String> {
    let protocol = match protocol {
        None | Some("") => Protocol::Tcp,
        Some(p) => Protocol::parse(p)?,
    };
    let port = u16::try_from(port)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("port {port} is not between 1 and 65535"))?;
    Ok(Flow {
        from: endpoint(cluster, from).map_err(|m| format!("from: {m}"))?,
        to: endpoint(cluster, to).map_err(|m| format!("to: {m}"))?,
        port,
        protocol,
    })
}

/// `namespace/pod` (must exist) or an IP address outside the pod set.
pub fn endpoint(cluster: &Cluster, text: &str) -> Result<Endpoint, String> {
    if text.contains('/') {
        return cluster
            .pod(text)
            .map(Endpoint::Pod)
            .ok_or_else(|| format!("no pod {text:?} in the cluster snapshot"));
    }
    parse_ip(text)
        .map(Endpoint::External)
        .map_err(|_| format!("{text:?} is neither namespace/pod nor an IP address"))
}

/// The name of an endpoint.
pub fn endpoint_name(cluster: &Cluster, endpoint: Endpoint) -> String {
    match endpoint {
        Endpoint::Pod(p) => cluster.pod_key(p),
        Endpoint::External(ip) => ip.to_string(),
    }
}

/// One probe's JSON result (the stable `netpol check` contract).
pub fn verdict_json(
    cluster: &Cluster,
    policies: &PolicySet,
    spec: &ProbeSpec,
    flow: &Flow,
    verdict: &Verdict,
) -> Value {
    json!({
        "from": spec.from,
        "to": spec.to,
        "port": flow.port,
        "protocol": flow.protocol.as_str(),
        "allowed": verdict.allowed,
        "egress": side_json(cluster, policies, &verdict.egress, verdict.self_traffic),
        "ingress": side_json(cluster, policies, &verdict.ingress, verdict.self_traffic),
    })
}

fn side_json(
    cluster: &Cluster,
    policies: &PolicySet,
    side: &SideVerdict,
    self_traffic: bool,
) -> Value {
    let names = |list: &[usize]| -> Vec<String> {
        list.iter().map(|&p| policies.policies[p].key()).collect()
    };
    json!({
        "pod": side.pod.map(|p| cluster.pod_key(p)),
        "isolated": side.isolated,
        "allowed": side.allowed || self_traffic,
        "policies": names(&side.policies),
        "allowedBy": side.allowed_by.iter().map(|r| json!({
            "policy": policies.policies[r.policy].key(),
            "rule": r.rule,
        })).collect::<Vec<_>>(),
        "reason": side_reason(cluster, policies, side, self_traffic),
    })
}

fn side_reason(
    cluster: &Cluster,
    policies: &PolicySet,
    side: &SideVerdict,
    self_traffic: bool,
) -> String {
    let dir = side.direction.as_str();
    let Some(pod) = side.pod else {
        let end = match side.direction {
            Direction::Egress => "source",
            Direction::Ingress => "destination",
        };
        return format!("the {end} is outside the pod set; no {dir} policy applies to it");
    };
    let pod = cluster.pod_key(pod);
    if self_traffic {
        return "traffic from a pod to itself is always allowed".into();
    }
    if !side.isolated {
        return format!(
            "{pod} is not isolated for {dir}: no policy of type {} selects it",
            title(side.direction)
        );
    }
    if let Some(r) = side.allowed_by.first() {
        return format!(
            "allowed by {} {dir} rule {}",
            policies.policies[r.policy].key(),
            r.rule
        );
    }
    format!("{pod} is isolated for {dir} and no rule of the policies selecting it allows this flow")
}

fn title(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    }
}

/// A human description of a peer.
pub fn describe_peer(peer: &Peer, policy_namespace: &str) -> String {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let pods = match pods {
                None => "all pods".to_owned(),
                Some(s) if s.is_everything() => "all pods".to_owned(),
                Some(s) => format!("pods {s}"),
            };
            match namespaces {
                None => format!("{pods} in namespace {policy_namespace}"),
                Some(s) if s.is_everything() => format!("{pods} in every namespace"),
                Some(s) => format!("{pods} in namespaces {s}"),
            }
        }
        Peer::IpBlock { cidr, except } if except.is_empty() => format!("addresses in {cidr}"),
        Peer::IpBlock { cidr, except } => format!(
            "addresses in {cidr} except {}",
            except
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `netpol explain`: the verdict in prose, with what to change when the flow is blocked.
pub fn explain_text(
    cluster: &Cluster,
    policies: &PolicySet,
    flow: &Flow,
    verdict: &Verdict,
) -> String {
    let from = endpoint_name(cluster, flow.from);
    let to = endpoint_name(cluster, flow.to);
    let mut out = String::new();
    let word = |b: bool| if b { "ALLOWED" } else { "BLOCKED" };
    let _ = writeln!(
        out,
        "{from} -> {to} on {}/{}: {}",
        flow.protocol,
        flow.port,
        word(verdict.allowed)
    );
    if verdict.self_traffic {
        let _ = writeln!(
            out,
            "\nTraffic from a pod to itself is always allowed; no policy can block it."
        );
        return out;
    }
    for side in [&verdict.egress, &verdict.ingress] {
        explain_side(&mut out, cluster, policies, flow, side);
    }
    if !verdict.allowed {
        let _ = writeln!(out, "\nTo allow it:");
        for side in [&verdict.egress, &verdict.ingress] {
            if !side.allowed {
                suggest(&mut out, cluster, flow, side);
            }
        }
    }
    out
}

fn explain_side(
    out: &mut String,
    cluster: &Cluster,
    policies: &PolicySet,
    flow: &Flow,
    side: &SideVerdict,
) {
    let (label, other) = match side.direction {
        Direction::Egress => ("Egress from", flow.to),
        Direction::Ingress => ("Ingress to", flow.from),
    };
    let own = match side.direction {
        Direction::Egress => flow.from,
        Direction::Ingress => flow.to,
    };
    let own_name = endpoint_name(cluster, own);
    let other_name = endpoint_name(cluster, other);
    let _ = writeln!(
        out,
        "\n{label} {own_name}: {}",
        if side.allowed { "allowed" } else { "BLOCKED" }
    );
    let dir = side.direction.as_str();
    let Some(_) = side.pod else {
        let _ = writeln!(
            out,
            "  {own_name} is outside the pod set, so no NetworkPolicy governs its {dir}."
        );
        return;
    };
    if !side.isolated {
        let _ = writeln!(
            out,
            "  No NetworkPolicy with policyType {} selects {own_name}, so its {dir} is not restricted.",
            title(side.direction)
        );
        return;
    }
    let list: Vec<String> = side
        .policies
        .iter()
        .map(|&p| {
            let policy = &policies.policies[p];
            format!("{} ({})", policy.key(), policy.origin)
        })
        .collect();
    let _ = writeln!(
        out,
        "  {own_name} is isolated for {dir} by {} {}: {}.",
        list.len(),
        if list.len() == 1 {
            "policy"
        } else {
            "policies"
        },
        list.join(", ")
    );
    for &p in &side.policies {
        let policy = &policies.policies[p];
        let rules = policy.rules(side.direction).unwrap_or_default();
        if rules.is_empty() {
            let _ = writeln!(
                out,
                "  - {} has no {dir} rules: it only isolates.",
                policy.key()
            );
            continue;
        }
        for check in side.checks.iter().filter(|c| c.rule.policy == p) {
            let rule = &rules[check.rule.rule];
            let ports = if rule.ports.is_empty() {
                "all ports".to_owned()
            } else {
                rule.ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let peers = if rule.peers.is_empty() {
                "everyone".to_owned()
            } else {
                rule.peers
                    .iter()
                    .map(|peer| describe_peer(peer, &policy.namespace))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let verdict = match (check.ports_match, check.peers_match) {
                (true, true) => "ALLOWS this flow".to_owned(),
                (false, true) => format!(
                    "{other_name} matches, but {}/{} is not among its ports",
                    flow.protocol, flow.port
                ),
                (true, false) => {
                    format!("the port matches, but {other_name} is not one of its peers")
                }
                (false, false) => format!("neither the port nor {other_name} match"),
            };
            let _ = writeln!(
                out,
                "  - {} {dir} rule {} (ports: {ports}; peers: {peers}): {verdict}.",
                policy.key(),
                check.rule.rule
            );
        }
    }
    if !side.allowed {
        let _ = writeln!(out, "  No rule allows this flow, so it is dropped.");
    }
}

fn suggest(out: &mut String, cluster: &Cluster, flow: &Flow, side: &SideVerdict) {
    let Some(pod) = side.pod else { return };
    let ns = cluster.pod_namespace(pod);
    let (key, other) = match side.direction {
        Direction::Egress => ("to", flow.to),
        Direction::Ingress => ("from", flow.from),
    };
    let peer = match other {
        Endpoint::Pod(o) => {
            let other_pod = &cluster.pods[o];
            let other_ns = cluster.pod_namespace(o);
            let mut peer = json!({ "podSelector": { "matchLabels": other_pod.labels } });
            if other_ns != ns {
                peer["namespaceSelector"] =
                    json!({ "matchLabels": { NAMESPACE_NAME_LABEL: other_ns } });
            }
            peer
        }
        Endpoint::External(ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            json!({ "ipBlock": { "cidr": format!("{ip}/{bits}") } })
        }
    };
    let rule = json!({ key: [peer], "ports": [{ "port": flow.port, "protocol": flow.protocol.as_str() }] });
    let _ = writeln!(
        out,
        "  add this {} rule to a policy in namespace {ns} that selects {}:",
        side.direction.as_str(),
        cluster.pod_key(pod)
    );
    let yaml = sluice_manifest::to_yaml_document(&Value::Array(vec![rule]));
    for line in yaml.lines() {
        let _ = writeln!(out, "    {line}");
    }
}

/// The reachability matrix as JSON.
pub fn matrix_json(
    cluster: &Cluster,
    reach: &Reachability,
    port: u16,
    protocol: Protocol,
) -> Value {
    let n = cluster.pods.len();
    let pods: Vec<String> = (0..n).map(|p| cluster.pod_key(p)).collect();
    let rows: Vec<Vec<bool>> = (0..n)
        .map(|s| (0..n).map(|d| reach.allowed(s, d)).collect())
        .collect();
    let summary = reach.summary();
    json!({
        "port": port,
        "protocol": protocol.as_str(),
        "pods": pods,
        "allowed": rows,
        "pairs": summary.pairs,
        "allowedPairs": summary.allowed,
        "deniedPairs": summary.denied,
    })
}

/// The reachability matrix as a table: rows are sources, columns destinations.
pub fn matrix_table(
    cluster: &Cluster,
    reach: &Reachability,
    port: u16,
    protocol: Protocol,
) -> String {
    let n = cluster.pods.len();
    let names: Vec<String> = (0..n).map(|p| cluster.pod_key(p)).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let num = n.to_string().len().max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Reachability on {protocol}/{port}: row = from, column = to; Y allowed, . blocked"
    );
    let _ = write!(out, "{:>num$} {:width$} ", "", "");
    for d in 0..n {
        let _ = write!(out, " {:>num$}", d + 1);
    }
    out.push('\n');
    for (s, name) in names.iter().enumerate() {
        let _ = write!(out, "{:>num$} {:width$} ", s + 1, name);
        for d in 0..n {
            let _ = write!(
                out,
                " {:>num$}",
                if reach.allowed(s, d) { "Y" } else { "." }
            );
        }
        out.push('\n');
    }
    let summary = reach.summary();
    let _ = writeln!(
        out,
        "\n{} ordered pairs of distinct pods: {} allowed, {} blocked",
        summary.pairs, summary.allowed, summary.denied
    );
    out
}
