//! Least-privilege policies from rendered manifests.
//!
//! Ingress: each workload accepts traffic only on the ports its Services target or its
//! containers declare, and only from the clients that are declared (traffic file, annotations)
//! or inferred (configuration naming a Service). A port nobody is known to use stays open on
//! that port only, and the explanation says so (or stays closed with `strict_ingress`).
//! Egress (opt-in): DNS always, the declared and inferred destinations, and the apiserver only
//! through an ipBlock, because no label selects it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::cidr::parse_cidr;
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::model::{
    PortValue, TrafficModel, TrafficPeer, TrafficPort, TrafficRule, WorkloadTraffic,
};
use crate::policy::Protocol;
use crate::workload::{Inventory, Service, Target, Workload};

/// Annotation on a workload listing what it talks to: `api:http, db.data:5432,
/// api.stripe.com:443, 10.0.0.0/8:5432, apiserver`.
pub const TALKS_TO: &str = "sluice.dev/talks-to";
/// Annotation on a workload listing the workloads allowed to call it: `web, ops/prom`.
pub const ALLOW_FROM: &str = "sluice.dev/allow-from";

/// Options of a generation.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Manage egress too.
    pub egress: bool,
    /// The apiserver's endpoint CIDR (needed when a workload talks to it and egress is on).
    pub apiserver_cidr: Option<String>,
    /// Leave ports without known clients closed instead of open on that port.
    pub strict_ingress: bool,
    /// Infer flows from configuration.
    pub infer: bool,
}

/// The traffic file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficFile {
    /// Declared flows.
    #[serde(default)]
    pub flows: Vec<FlowSpec>,
}

/// One declared flow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    /// Source.
    pub from: EndpointSpec,
    /// Destination (with `port`).
    pub to: EndpointSpec,
}

/// One end of a declared flow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// A workload of the manifests, by name.
    #[serde(default)]
    pub workload: Option<String>,
    /// Its namespace (default: the only workload with that name).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Pods outside the manifests, by labels (with `namespace` or `namespaces`).
    #[serde(default)]
    pub pods: Option<Labels>,
    /// Namespaces by labels.
    #[serde(default)]
    pub namespaces: Option<Labels>,
    /// An address range.
    #[serde(default)]
    pub cidr: Option<String>,
    /// Exceptions in it.
    #[serde(default)]
    pub except: Vec<String>,
    /// A DNS name (destination only).
    #[serde(default)]
    pub fqdn: Option<String>,
    /// The Kubernetes API server (destination only).
    #[serde(default)]
    pub apiserver: bool,
    /// Destination port: number or name.
    #[serde(default)]
    pub port: Option<PortValue>,
    /// Protocol (default TCP).
    #[serde(default)]
    pub protocol: Option<String>,
}

/// Why a rule exists, for `--explain`.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// `namespace/workload`.
    pub workload: String,
    /// Lines of explanation.
    pub lines: Vec<String>,
}

/// The result: the model (render it for any engine) and the explanations.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The traffic model.
    pub model: TrafficModel,
    /// Per workload, why each rule is there.
    pub explanations: Vec<Explanation>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Workload(usize),
    Peer(PeerKey),
    Apiserver,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PeerKey {
    Selector(Option<Labels>, Option<Labels>),
    Cidr(String, Vec<String>),
    Fqdn(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Workload(usize),
    Peer(PeerKey),
}

#[derive(Debug, Clone)]
struct Flow {
    from: Source,
    to: Dest,
    port: Option<(PortValue, Protocol)>,
    why: String,
    inferred: bool,
}

/// Builds the traffic model from manifests and declared flows.
pub fn generate(
    inventory: &Inventory,
    traffic: &TrafficFile,
    options: &GenerateOptions,
) -> Result<Generated> {
    let workloads: Vec<&Workload> = inventory
        .workloads
        .iter()
        .filter(|w| !w.host_network)
        .collect();
    let find = |name: &str, ns: Option<&str>| -> Result<usize> {
        let hits: Vec<usize> = workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| w.name == name && ns.is_none_or(|n| n == w.namespace))
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::Invalid(format!(
                "traffic: no workload {}{name} in the manifests",
                ns.map(|n| format!("{n}/")).unwrap_or_default()
            ))),
            _ => Err(Error::Invalid(format!(
                "traffic: workload {name} exists in several namespaces: add `namespace`"
            ))),
        }
    };
    let mut flows: Vec<Flow> = Vec::new();

    // Declared flows.
    for (i, f) in traffic.flows.iter().enumerate() {
        let at = |m: String| Error::Invalid(format!("traffic: flows[{i}]: {m}"));
        let from = match (
            &f.from.workload,
            &f.from.cidr,
            &f.from.pods,
            &f.from.namespaces,
        ) {
            (Some(w), None, None, None) => Source::Workload(
                find(w, f.from.namespace.as_deref()).map_err(|e| at(e.to_string()))?,
            ),
            (None, Some(c), None, None) => {
                Source::Peer(PeerKey::Cidr(c.clone(), f.from.except.clone()))
            }
            (None, None, pods, namespaces)
                if pods.is_some() || namespaces.is_some() || f.from.namespace.is_some() =>
            {
                Source::Peer(selector_peer(
                    pods.clone(),
                    namespaces.clone(),
                    f.from.namespace.as_deref(),
                ))
            }
            _ => {
                return Err(at(
                    "`from` needs exactly one of workload, cidr, or pods/namespace(s)".into(),
                ));
            }
        };
        if f.from.fqdn.is_some() || f.from.apiserver || f.from.port.is_some() {
            return Err(at("`from` takes no fqdn, apiserver or port".into()));
        }
        let to = match (&f.to.workload, &f.to.cidr, &f.to.fqdn, f.to.apiserver) {
            (Some(w), None, None, false) => {
                Dest::Workload(find(w, f.to.namespace.as_deref()).map_err(|e| at(e.to_string()))?)
            }
            (None, Some(c), None, false) => {
                Dest::Peer(PeerKey::Cidr(c.clone(), f.to.except.clone()))
            }
            (None, None, Some(q), false) => Dest::Peer(PeerKey::Fqdn(q.clone())),
            (None, None, None, true) => Dest::Apiserver,
            (None, None, None, false)
                if f.to.pods.is_some() || f.to.namespaces.is_some() || f.to.namespace.is_some() =>
            {
                Dest::Peer(selector_peer(
                    f.to.pods.clone(),
                    f.to.namespaces.clone(),
                    f.to.namespace.as_deref(),
                ))
            }
            _ => return Err(at(
                "`to` needs exactly one of workload, cidr, fqdn, apiserver, or pods/namespace(s)"
                    .into(),
            )),
        };
        if !matches!(from, Source::Workload(_)) && !matches!(to, Dest::Workload(_)) {
            // Neither end is a workload sluice writes a policy for: the flow would vanish.
            return Err(at(
                "a flow needs a workload of the manifests at one end at least".into(),
            ));
        }
        let protocol =
            f.to.protocol
                .as_deref()
                .map(Protocol::parse)
                .transpose()
                .map_err(at)?
                .unwrap_or(Protocol::Tcp);
        flows.push(Flow {
            from,
            to,
            port: f.to.port.clone().map(|p| (p, protocol)),
            why: format!("declared in the traffic file (flows[{i}])"),
            inferred: false,
        });
    }

    // Annotations.
    for (wi, w) in workloads.iter().enumerate() {
        if let Some(list) = w.annotations.get(TALKS_TO) {
            for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (to, port) = parse_talks_to(entry, w, &workloads, inventory).map_err(|m| {
                    Error::Invalid(format!(
                        "{}: {}/{}: annotation {TALKS_TO}: {m}",
                        w.origin, w.namespace, w.name
                    ))
                })?;
                flows.push(Flow {
                    from: Source::Workload(wi),
                    to,
                    port,
                    why: format!("annotation {TALKS_TO} on {}/{}", w.namespace, w.name),
                    inferred: false,
                });
            }
        }
        if let Some(list) = w.annotations.get(ALLOW_FROM) {
            for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (ns, name) = match entry.split_once('/') {
                    Some((ns, name)) => (Some(ns), name),
                    None => (None, entry),
                };
                let from = match ns {
                    Some(ns) => find(name, Some(ns)),
                    None => find(name, Some(&w.namespace)).or_else(|_| find(name, None)),
                }
                .map_err(|e| {
                    Error::Invalid(format!(
                        "{}: {}/{}: annotation {ALLOW_FROM}: {e}",
                        w.origin, w.namespace, w.name
                    ))
                })?;
                flows.push(Flow {
                    from: Source::Workload(from),
                    to: Dest::Workload(wi),
                    port: None,
                    why: format!("annotation {ALLOW_FROM} on {}/{}", w.namespace, w.name),
                    inferred: false,
                });
            }
        }
    }

    // Inferred from configuration.
    if options.infer {
        for (wi, w) in workloads.iter().enumerate() {
            for (source, text) in &w.config {
                for reference in service_references(text) {
                    if reference.is_apiserver() {
                        flows.push(Flow {
                            from: Source::Workload(wi),
                            to: Dest::Apiserver,
                            port: None,
                            why: format!("{source} names {}", reference.host),
                            inferred: true,
                        });
                        continue;
                    }
                    let Some(service) = reference.resolve(&w.namespace, &inventory.services) else {
                        continue;
                    };
                    for (target, port) in
                        service_targets(service, reference.port, reference.scheme_port, &workloads)
                    {
                        if target == wi {
                            continue;
                        }
                        flows.push(Flow {
                            from: Source::Workload(wi),
                            to: Dest::Workload(target),
                            port: Some(port),
                            why: format!(
                                "{source} names Service {}/{} ({})",
                                service.namespace, service.name, reference.text
                            ),
                            inferred: true,
                        });
                    }
                }
            }
        }
    }

    build_model(&workloads, inventory, &flows, options)
}

fn selector_peer(
    pods: Option<Labels>,
    namespaces: Option<Labels>,
    namespace: Option<&str>,
) -> PeerKey {
    let namespaces = namespaces.or_else(|| {
        namespace.map(|n| {
            Labels::from([(
                crate::cluster::NAMESPACE_NAME_LABEL.to_owned(),
                n.to_owned(),
            )])
        })
    });
    PeerKey::Selector(pods.or_else(|| Some(Labels::new())), namespaces)
}

fn parse_talks_to(
    entry: &str,
    w: &Workload,
    workloads: &[&Workload],
    inventory: &Inventory,
) -> std::result::Result<(Dest, Option<(PortValue, Protocol)>), String> {
    if entry == "apiserver" {
        return Ok((Dest::Apiserver, None));
    }
    let (target, port) = match entry.rsplit_once(':') {
        Some((t, p)) if !t.contains(':') || t.contains('/') => (t, Some(p)),
        _ => (entry, None),
    };
    let port = port.map(|p| match p.parse::<u16>() {
        Ok(n) => (PortValue::Number(n), Protocol::Tcp),
        Err(_) => (PortValue::Name(p.to_owned()), Protocol::Tcp),
    });
    if target.contains('/') && parse_cidr(target).is_ok() {
        return Ok((
            Dest::Peer(PeerKey::Cidr(target.to_owned(), Vec::new())),
            port,
        ));
    }
    // `name`, `ns/name` or `name.ns` naming a workload or a Service.
    let (ns, name) = match (target.split_once('/'), target.split_once('.')) {
        (Some((ns, name)), _) => (ns, name),
        (None, Some((name, ns))) if !ns.contains('.') => (ns, name),
        (None, None) => (w.namespace.as_str(), target),
        _ => ("", ""),
    };
    if let Some(i) = workloads
        .iter()
        .position(|x| x.name == name && x.namespace == ns)
    {
        return Ok((Dest::Workload(i), port));
    }
    if let Some(svc) = inventory
        .services
        .iter()
        .find(|s| s.name == name && s.namespace == ns)
    {
        let number = port.as_ref().and_then(|(p, _)| match p {
            PortValue::Number(n) => Some(*n),
            PortValue::Name(_) => None,
        });
        let targets = service_targets(svc, number, None, workloads);
        if let Some((i, p)) = targets.into_iter().next() {
            return Ok((Dest::Workload(i), Some(p)));
        }
        return Err(format!(
            "Service {ns}/{name} selects no workload of the manifests"
        ));
    }
    if target.contains('.') && !target.contains('/') {
        return Ok((Dest::Peer(PeerKey::Fqdn(target.to_owned())), port));
    }
    Err(format!(
        "{target:?} is not a workload, Service, CIDR or DNS name"
    ))
}

/// Workloads a Service sends to, with the container port (number or name) per Service port.
fn service_targets(
    service: &Service,
    port: Option<u16>,
    scheme_port: Option<u16>,
    workloads: &[&Workload],
) -> Vec<(usize, (PortValue, Protocol))> {
    let Some(selector) = &service.selector else {
        return Vec::new();
    };
    let ports: Vec<_> = match port.or(scheme_port) {
        Some(p) => service.ports.iter().filter(|sp| sp.port == p).collect(),
        None => service.ports.iter().collect(),
    };
    let ports = if ports.is_empty() && port.is_none() && service.ports.len() == 1 {
        service.ports.iter().collect()
    } else {
        ports
    };
    let mut out = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        if w.namespace != service.namespace
            || !selector.iter().all(|(k, v)| w.pod_labels.get(k) == Some(v))
        {
            continue;
        }
        for sp in &ports {
            let value = match &sp.target {
                Target::Number(n) => PortValue::Number(*n),
                Target::Name(name) => {
                    match w.ports.iter().find(|cp| cp.name.as_deref() == Some(name)) {
                        Some(cp) => PortValue::Number(cp.port),
                        None => PortValue::Name(name.clone()),
                    }
                }
            };
            out.push((i, (value, sp.protocol)));
        }
    }
    out
}

/// A reference to a Service found in configuration text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceReference {
    /// The token as found.
    pub text: String,
    /// The host part.
    pub host: String,
    /// Explicit port.
    pub port: Option<u16>,
    /// Port implied by the scheme (http 80, https 443).
    pub scheme_port: Option<u16>,
}

impl ServiceReference {
    fn is_apiserver(&self) -> bool {
        matches!(
            self.host.as_str(),
            "kubernetes.default"
                | "kubernetes.default.svc"
                | "kubernetes.default.svc.cluster.local"
        )
    }

    /// The Service this names, seen from a workload in `namespace`.
    pub fn resolve<'a>(&self, namespace: &str, services: &'a [Service]) -> Option<&'a Service> {
        let host = self
            .host
            .strip_suffix(".cluster.local")
            .unwrap_or(&self.host);
        let host = host.strip_suffix(".svc").unwrap_or(host);
        let (name, ns) = match host.split_once('.') {
            Some((name, ns)) if !ns.contains('.') => (name, ns),
            Some(_) => return None,
            None => (host, namespace),
        };
        services
            .iter()
            .find(|s| s.name == name && s.namespace == ns)
    }
}

/// Finds `scheme://host[:port]`, `host:port` and `name.ns[.svc[.cluster.local]]` references in
/// configuration text. A bare word is never taken for a Service: it needs a scheme, a port or
/// a namespace part.
pub fn service_references(text: &str) -> Vec<ServiceReference> {
    let mut out = Vec::new();
    for token in text.split(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '=' | '(' | ')' | '[' | ']')
    }) {
        if token.is_empty() {
            continue;
        }
        let (scheme, rest) = match token.split_once("://") {
            Some((s, r)) => (Some(s.to_ascii_lowercase()), r),
            None => (None, token),
        };
        let rest = rest.split(['/', '?', '#']).next().unwrap_or("");
        let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(n) => (h, Some(n)),
                Err(_) => continue,
            },
            None => (rest, None),
        };
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && host.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if !valid || (scheme.is_none() && port.is_none() && !host.contains('.')) {
            continue;
        }
        let scheme_port = match scheme.as_deref() {
            Some("http" | "ws") => Some(80),
            Some("https" | "wss") => Some(443),
            _ => None,
        };
        out.push(ServiceReference {
            text: token.to_owned(),
            host: host.to_owned(),
            port,
            scheme_port,
        });
    }
    out
}

fn peer_for_source(
    source: &Source,
    target_ns: &str,
    workloads: &[&Workload],
) -> Result<TrafficPeer> {
    Ok(match source {
        Source::Workload(i) => workload_peer(workloads[*i], target_ns)?,
        Source::Peer(key) => key_peer(key),
    })
}

fn workload_peer(w: &Workload, from_ns: &str) -> Result<TrafficPeer> {
    if w.pod_labels.is_empty() {
        return Err(Error::Invalid(format!(
            "{}/{} ({}) has no pod labels, so no policy can select it: add labels to its pod template",
            w.namespace, w.name, w.origin
        )));
    }
    Ok(TrafficPeer {
        pods: Some(w.pod_labels.clone()),
        namespaces: (w.namespace != from_ns).then(|| {
            Labels::from([(
                crate::cluster::NAMESPACE_NAME_LABEL.to_owned(),
                w.namespace.clone(),
            )])
        }),
        ..TrafficPeer::default()
    })
}

fn key_peer(key: &PeerKey) -> TrafficPeer {
    match key {
        PeerKey::Selector(pods, namespaces) => TrafficPeer {
            pods: pods.clone(),
            namespaces: namespaces.clone(),
            ..TrafficPeer::default()
        },
        PeerKey::Cidr(c, e) => TrafficPeer {
            cidr: Some(c.clone()),
            except: e.clone(),
            ..TrafficPeer::default()
        },
        PeerKey::Fqdn(f) => TrafficPeer {
            fqdn: Some(f.clone()),
            ..TrafficPeer::default()
        },
    }
}

fn port_text(p: &(PortValue, Protocol)) -> String {
    match &p.0 {
        PortValue::Number(n) => format!("{}/{n}", p.1),
        PortValue::Name(n) => format!("{}/{n}", p.1),
    }
}

fn traffic_port(p: &(PortValue, Protocol)) -> TrafficPort {
    TrafficPort {
        port: p.0.clone(),
        end_port: None,
        protocol: (p.1 != Protocol::Tcp).then(|| p.1.as_str().to_owned()),
    }
}

fn build_model(
    workloads: &[&Workload],
    inventory: &Inventory,
    flows: &[Flow],
    options: &GenerateOptions,
) -> Result<Generated> {
    let mut model = TrafficModel::default();
    let mut explanations = Vec::new();
    let mut names: BTreeSet<(String, String)> = BTreeSet::new();
    for (wi, w) in workloads.iter().enumerate() {
        let mut lines = Vec::new();
        if w.pod_labels.is_empty() {
            return Err(Error::Invalid(format!(
                "{}/{} ({}) has no pod labels to select it by",
                w.namespace, w.name, w.origin
            )));
        }
        let name = if names.insert((w.namespace.clone(), w.name.clone())) {
            w.name.clone()
        } else {
            format!("{}-{}", w.kind.to_lowercase(), w.name)
        };
        // Ports the workload serves: what its Services target, and what it declares.
        let mut ports: BTreeMap<(PortValue, Protocol), String> = BTreeMap::new();
        for svc in &inventory.services {
            for (target, port) in service_targets(svc, None, None, workloads) {
                if target == wi {
                    ports
                        .entry(port)
                        .or_insert_with(|| format!("Service {}/{}", svc.namespace, svc.name));
                }
            }
        }
        for cp in &w.ports {
            ports
                .entry((PortValue::Number(cp.port), cp.protocol))
                .or_insert_with(|| "a containerPort".to_owned());
        }
        // Clients per port (None = every port the workload serves).
        let incoming: Vec<&Flow> = flows
            .iter()
            .filter(|f| f.to == Dest::Workload(wi))
            .collect();
        let mut ingress = Vec::new();
        let mut by_port: BTreeMap<Option<(PortValue, Protocol)>, Vec<&Flow>> = BTreeMap::new();
        for f in &incoming {
            let port = f.port.clone().map(|p| resolve_name(p, w));
            by_port.entry(port).or_default().push(f);
        }
        let mut covered: BTreeSet<(PortValue, Protocol)> = BTreeSet::new();
        for (port, clients) in &by_port {
            let mut rule = TrafficRule::default();
            let mut seen = BTreeSet::new();
            for f in clients {
                if seen.insert(f.from.clone()) {
                    rule.from
                        .push(peer_for_source(&f.from, &w.namespace, workloads)?);
                }
                rule.inferred |= f.inferred;
            }
            let target_ports: Vec<(PortValue, Protocol)> = match port {
                Some(p) => vec![p.clone()],
                None => ports.keys().cloned().collect(),
            };
            covered.extend(target_ports.iter().cloned());
            rule.ports = target_ports.iter().map(traffic_port).collect();
            let who: Vec<String> = clients
                .iter()
                .map(|f| {
                    format!(
                        "{} ({}{})",
                        source_name(&f.from, workloads),
                        f.why,
                        if f.inferred { ", inferred" } else { "" }
                    )
                })
                .collect();
            lines.push(format!(
                "ingress on {}: from {}",
                if target_ports.is_empty() {
                    "every port".to_owned()
                } else {
                    target_ports
                        .iter()
                        .map(port_text)
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                who.join("; ")
            ));
            ingress.push(rule);
        }
        for (port, origin) in &ports {
            if covered.contains(port) {
                continue;
            }
            if options.strict_ingress {
                lines.push(format!("ingress on {}: CLOSED (served per {origin}, but no client is declared or inferred)", port_text(port)));
            } else {
                lines.push(format!(
                    "ingress on {}: open to every source (served per {origin}; no client is declared or inferred; declare its clients to narrow it)",
                    port_text(port)
                ));
                ingress.push(TrafficRule {
                    ports: vec![traffic_port(port)],
                    reason: Some(format!("served per {origin}")),
                    ..TrafficRule::default()
                });
            }
        }
        if ports.is_empty() && incoming.is_empty() {
            lines.push(
                "ingress: none (no Service targets it, it declares no ports and nothing calls it)"
                    .into(),
            );
        }

        let egress = if options.egress {
            let mut rules = vec![TrafficRule {
                to: vec![TrafficPeer {
                    pods: Some(Labels::from([(
                        "k8s-app".to_owned(),
                        "kube-dns".to_owned(),
                    )])),
                    namespaces: Some(Labels::from([(
                        crate::cluster::NAMESPACE_NAME_LABEL.to_owned(),
                        "kube-system".to_owned(),
                    )])),
                    ..TrafficPeer::default()
                }],
                ports: vec![
                    TrafficPort {
                        port: PortValue::Number(53),
                        end_port: None,
                        protocol: Some("UDP".into()),
                    },
                    TrafficPort {
                        port: PortValue::Number(53),
                        end_port: None,
                        protocol: None,
                    },
                ],
                reason: Some("DNS (always, or every lookup would time out)".into()),
                ..TrafficRule::default()
            }];
            lines.push(
                "egress to kube-system/kube-dns on UDP/53, TCP/53: DNS, always included".into(),
            );
            let mut seen = BTreeSet::new();
            for f in flows.iter().filter(|f| f.from == Source::Workload(wi)) {
                let (peer, what) = match &f.to {
                    Dest::Workload(t) => {
                        let target = workloads[*t];
                        (
                            workload_peer(target, &w.namespace)?,
                            format!("{}/{}", target.namespace, target.name),
                        )
                    }
                    Dest::Peer(k) => (
                        key_peer(k),
                        source_name(&Source::Peer(k.clone()), workloads),
                    ),
                    Dest::Apiserver => {
                        let Some(cidr) = &options.apiserver_cidr else {
                            return Err(Error::Invalid(format!(
                                "{}/{} talks to the Kubernetes API server ({}), which no pod or namespace selector can match: pass --apiserver-cidr with its endpoint addresses (kubectl get endpoints kubernetes -n default)",
                                w.namespace, w.name, f.why
                            )));
                        };
                        let peer = TrafficPeer {
                            cidr: Some(cidr.clone()),
                            ..TrafficPeer::default()
                        };
                        if seen.insert(format!("apiserver {cidr}")) {
                            rules.push(TrafficRule {
                                to: vec![peer],
                                ports: vec![
                                    TrafficPort {
                                        port: PortValue::Number(443),
                                        end_port: None,
                                        protocol: None,
                                    },
                                    TrafficPort {
                                        port: PortValue::Number(6443),
                                        end_port: None,
                                        protocol: None,
                                    },
                                ],
                                reason: Some(f.why.clone()),
                                inferred: f.inferred,
                                ..TrafficRule::default()
                            });
                            lines.push(format!(
                                "egress to the apiserver {cidr} on TCP/443, TCP/6443 ({})",
                                f.why
                            ));
                        }
                        continue;
                    }
                };
                let port = f.port.clone().map(|p| match &f.to {
                    Dest::Workload(t) => resolve_name(p, workloads[*t]),
                    _ => p,
                });
                let key = format!("{peer:?}{port:?}");
                if !seen.insert(key) {
                    continue;
                }
                lines.push(format!(
                    "egress to {what} on {} ({}{})",
                    port.as_ref()
                        .map(port_text)
                        .unwrap_or_else(|| "every port".into()),
                    f.why,
                    if f.inferred { ", inferred" } else { "" }
                ));
                rules.push(TrafficRule {
                    to: vec![peer],
                    ports: port.iter().map(traffic_port).collect(),
                    reason: Some(f.why.clone()),
                    inferred: f.inferred,
                    ..TrafficRule::default()
                });
            }
            Some(rules)
        } else {
            None
        };
        model.workloads.push(WorkloadTraffic {
            name,
            namespace: w.namespace.clone(),
            pod_selector: w.pod_labels.clone(),
            ingress: Some(ingress),
            egress,
        });
        explanations.push(Explanation {
            workload: format!("{}/{}", w.namespace, w.name),
            lines,
        });
    }
    model.validate("generated model")?;
    Ok(Generated {
        model,
        explanations,
    })
}

/// A named port becomes its number when the destination declares it (clearer policies, and
/// every engine can express a number).
fn resolve_name(port: (PortValue, Protocol), target: &Workload) -> (PortValue, Protocol) {
    if let PortValue::Name(name) = &port.0
        && let Some(cp) = target
            .ports
            .iter()
            .find(|cp| cp.name.as_deref() == Some(name))
    {
        return (PortValue::Number(cp.port), cp.protocol);
    }
    port
}

fn source_name(source: &Source, workloads: &[&Workload]) -> String {
    match source {
        Source::Workload(i) => format!("{}/{}", workloads[*i].namespace, workloads[*i].name),
        Source::Peer(PeerKey::Cidr(c, e)) if e.is_empty() => c.clone(),
        Source::Peer(PeerKey::Cidr(c, e)) => format!("{c} except {}", e.join(", ")),
        Source::Peer(PeerKey::Fqdn(f)) => f.clone(),
        Source::Peer(PeerKey::Selector(p, n)) => format!(
            "pods {} in namespaces {}",
            p.as_ref()
                .map(|l| crate::labels::Selector::from_labels(l).to_string())
                .unwrap_or_else(|| "<all>".into()),
            n.as_ref()
                .map(|l| crate::labels::Selector::from_labels(l).to_string())
                .unwrap_or_else(|| "<own>".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_references_are_found_in_common_forms() {
        let refs = |t: &str| {
            service_references(t)
                .into_iter()
                .map(|r| (r.host, r.port))
                .collect::<Vec<_>>()
        };
        assert_eq!(refs("http://api:8080/v1"), vec![("api".into(), Some(8080))]);
        assert_eq!(
            refs("postgres://u:p@db.data.svc.cluster.local:5432/app"),
            vec![("db.data.svc.cluster.local".into(), Some(5432))]
        );
        assert_eq!(
            refs("--cache=redis.cache:6379"),
            vec![("redis.cache".into(), Some(6379))]
        );
        assert_eq!(refs("api.shop.svc"), vec![("api.shop.svc".into(), None)]);
        assert!(refs("api").is_empty(), "a bare word is not a reference");
        assert!(refs("Hello World 12").is_empty());
    }
}
