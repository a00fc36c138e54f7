//! Lint: the classic NetworkPolicy mistakes, each reported with file, policy and field.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::docs::PolicySet;
use crate::policy::{Direction, Peer, Policy, PortRule, PortSel, Protocol, Rule};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing.
    Info,
    /// Probably a mistake.
    Warning,
    /// Breaks traffic or is rejected by the API server.
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// Stable identifier of the check.
    pub code: &'static str,
    /// File the policy came from (empty for namespace-wide findings).
    pub file: String,
    /// `namespace/name` of the policy, or the namespace.
    pub policy: String,
    /// Field path, when one field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

const APISERVER_PORTS: [u16; 2] = [443, 6443];

/// Runs every check. `pods` (from a cluster snapshot or manifests) enables the checks that need
/// to know which pods exist.
pub fn lint(policies: &PolicySet, pods: Option<&Cluster>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (index, problem) in &policies.problems {
        let p = &policies.policies[*index];
        let code = if problem.field.contains("except") {
            "except-outside-cidr"
        } else {
            "invalid-end-port"
        };
        out.push(finding(
            Level::Error,
            code,
            p,
            Some(problem.field.clone()),
            problem.message.clone(),
        ));
    }
    for (pi, p) in policies.policies.iter().enumerate() {
        open_rules(p, &mut out);
        apiserver_by_selector(p, &mut out);
        dns(policies, pi, pods, &mut out);
        if let Some(cluster) = pods {
            selects_nothing(p, cluster, &mut out);
            named_ports(p, cluster, &mut out);
        }
        shadowed(policies, pi, &mut out);
    }
    default_deny(policies, pods, &mut out);
    out.sort_by(|a, b| {
        (b.level, &a.file, &a.policy, a.code).cmp(&(a.level, &b.file, &b.policy, b.code))
    });
    out
}

fn finding(
    level: Level,
    code: &'static str,
    p: &Policy,
    field: Option<String>,
    message: String,
) -> Finding {
    Finding {
        level,
        code,
        file: p.origin.clone(),
        policy: p.key(),
        field,
        message,
    }
}

fn rules_of(p: &Policy) -> impl Iterator<Item = (Direction, usize, &Rule)> {
    [Direction::Ingress, Direction::Egress]
        .into_iter()
        .flat_map(move |d| {
            p.rules(d)
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(move |(i, r)| (d, i, r))
        })
}

fn ports_text(rule: &Rule) -> String {
    if rule.ports.is_empty() {
        "every port".into()
    } else {
        rule.ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An empty `from` opens the ports to every source, inside and outside the cluster.
fn open_rules(p: &Policy, out: &mut Vec<Finding>) {
    for (d, i, rule) in rules_of(p) {
        if !rule.peers.is_empty() {
            continue;
        }
        let field = Some(format!("spec.{}[{i}]", d.as_str()));
        match d {
            Direction::Ingress => out.push(finding(
                Level::Warning,
                "open-to-everyone",
                p,
                field,
                format!(
                    "ingress rule {i} has no `from`, so {} is open to every pod and every address outside the cluster; list the peers that need it",
                    ports_text(rule)
                ),
            )),
            Direction::Egress => out.push(finding(
                Level::Info,
                "open-to-everyone",
                p,
                field,
                format!("egress rule {i} has no `to`: {} may go to any destination", ports_text(rule)),
            )),
        }
    }
}

fn covers(rule: &Rule, port: u16, protocol: Protocol) -> bool {
    rule.ports.is_empty()
        || rule.ports.iter().any(|p| {
            p.protocol == protocol
                && match &p.port {
                    PortSel::Any => true,
                    PortSel::Range(a, b) => (*a..=*b).contains(&port),
                    PortSel::Named(n) => protocol == Protocol::Udp && n == "dns",
                }
        })
}

/// The apiserver runs on the host network or outside the cluster: no label selects it.
fn apiserver_by_selector(p: &Policy, out: &mut Vec<Finding>) {
    for (i, rule) in p.egress.iter().flatten().enumerate() {
        let selector_peers: Vec<&Peer> = rule
            .peers
            .iter()
            .filter(|x| matches!(x, Peer::Pods { .. }))
            .collect();
        let has_ip = rule.peers.iter().any(|x| matches!(x, Peer::IpBlock { .. }));
        if selector_peers.is_empty() || has_ip {
            continue;
        }
        let names_apiserver = selector_peers.iter().any(|peer| {
            let text = format!("{peer:?}");
            text.contains("apiserver") || text.contains("\"kubernetes\"")
        });
        let apiserver_port = !rule.ports.is_empty()
            && rule.ports.iter().any(|pr| {
                pr.protocol == Protocol::Tcp
                    && matches!(pr.port, PortSel::Range(a, b) if (a..=b).contains(&6443))
            });
        if names_apiserver || apiserver_port {
            out.push(finding(
                Level::Error,
                "apiserver-by-selector",
                p,
                Some(format!("spec.egress[{i}].to")),
                format!(
                    "egress rule {i} tries to reach the Kubernetes API server ({}) through pod/namespace selectors; the apiserver is not a pod those select, so this traffic stays blocked. Allow it with an ipBlock of the apiserver endpoint IPs (kubectl get endpoints kubernetes -n default) on {}",
                    ports_text(rule),
                    APISERVER_PORTS.map(|x| x.to_string()).join("/")
                ),
            ));
        }
    }
}

/// Egress isolation without DNS: every lookup times out.
fn dns(policies: &PolicySet, pi: usize, pods: Option<&Cluster>, out: &mut Vec<Finding>) {
    let p = &policies.policies[pi];
    if p.egress.is_none() {
        return;
    }
    let same_ns: Vec<&Policy> = policies
        .in_namespace(&p.namespace)
        .iter()
        .map(|&i| &policies.policies[i])
        .filter(|q| q.egress.is_some())
        .collect();
    let allows_dns = |q: &Policy| {
        q.egress
            .iter()
            .flatten()
            .any(|r| covers(r, 53, Protocol::Udp))
    };
    let ok = match pods {
        Some(cluster) => {
            // Every pod this policy isolates must get DNS from some policy selecting it.
            let ns = cluster.namespace(&p.namespace);
            cluster
                .pods
                .iter()
                .filter(|pod| Some(pod.namespace) == ns && p.pod_selector.matches(&pod.labels))
                .all(|pod| {
                    same_ns
                        .iter()
                        .any(|q| q.pod_selector.matches(&pod.labels) && allows_dns(q))
                })
        }
        None => same_ns.iter().any(|q| {
            (q.pod_selector.is_everything() || q.pod_selector == p.pod_selector) && allows_dns(q)
        }),
    };
    if !ok {
        out.push(finding(
            Level::Error,
            "egress-without-dns",
            p,
            Some("spec.policyTypes".into()),
            "isolates egress but no egress rule for these pods allows DNS (UDP/53): name lookups will time out. Add a rule to the cluster DNS, e.g. `to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]` with ports UDP/53 and TCP/53".into(),
        ));
    }
}

fn selects_nothing(p: &Policy, cluster: &Cluster, out: &mut Vec<Finding>) {
    let ns = cluster.namespace(&p.namespace);
    let any = cluster
        .pods
        .iter()
        .any(|pod| Some(pod.namespace) == ns && p.pod_selector.matches(&pod.labels));
    if !any {
        out.push(finding(
            Level::Warning,
            "selects-no-pods",
            p,
            Some("spec.podSelector".into()),
            format!(
                "podSelector {} matches no pod in namespace {}: the policy has no effect (a typo in a label?)",
                p.pod_selector, p.namespace
            ),
        ));
    }
}

fn named_ports(p: &Policy, cluster: &Cluster, out: &mut Vec<Finding>) {
    let ns = cluster.namespace(&p.namespace);
    for (d, i, rule) in rules_of(p) {
        for (j, pr) in rule.ports.iter().enumerate() {
            let PortSel::Named(name) = &pr.port else {
                continue;
            };
            let declared = cluster.pods.iter().any(|pod| {
                let relevant = match d {
                    Direction::Ingress => {
                        Some(pod.namespace) == ns && p.pod_selector.matches(&pod.labels)
                    }
                    Direction::Egress => true,
                };
                relevant
                    && pod
                        .ports
                        .iter()
                        .any(|cp| cp.name.as_deref() == Some(name) && cp.protocol == pr.protocol)
            });
            if !declared {
                let whose = match d {
                    Direction::Ingress => "no pod this policy selects",
                    Direction::Egress => "no pod",
                };
                out.push(finding(
                    Level::Warning,
                    "undeclared-named-port",
                    p,
                    Some(format!("spec.{}[{i}].ports[{j}].port", d.as_str())),
                    format!(
                        "named port {name:?} ({}) is declared by {whose}: the rule matches nothing",
                        pr.protocol
                    ),
                ));
            }
        }
    }
}

fn port_covered(narrow: &PortRule, broad: &[PortRule]) -> bool {
    broad.is_empty()
        || broad.iter().any(|b| {
            b.protocol == narrow.protocol
                && match (&b.port, &narrow.port) {
                    (PortSel::Any, _) => true,
                    (PortSel::Range(a, z), PortSel::Range(x, y)) => a <= x && y <= z,
                    (PortSel::Named(m), PortSel::Named(n)) => m == n,
                    _ => false,
                }
        })
}

fn peer_covered(narrow: &Peer, broad: &[Peer]) -> bool {
    broad.is_empty()
        || broad.iter().any(|b| match (b, narrow) {
            (
                Peer::IpBlock {
                    cidr: bc,
                    except: be,
                },
                Peer::IpBlock {
                    cidr: nc,
                    except: _,
                },
            ) => {
                bc.contains(nc)
                    && be
                        .iter()
                        .all(|e| !e.contains(&nc.network()) && !nc.contains(e))
            }
            (
                Peer::Pods {
                    namespaces: bn,
                    pods: bp,
                },
                Peer::Pods {
                    namespaces: nn,
                    pods: np,
                },
            ) => {
                let ns_ok = match (bn, nn) {
                    (Some(b), _)
                        if b.is_everything() && bp.as_ref().is_none_or(|s| s.is_everything()) =>
                    {
                        true
                    }
                    (b, n) => b == n,
                };
                let pods_ok = match (bp, np) {
                    (None, _) => true,
                    (Some(b), _) if b.is_everything() => true,
                    (Some(b), Some(n)) => b == n,
                    (Some(_), None) => false,
                };
                ns_ok && pods_ok
            }
            _ => false,
        })
}

/// A rule that a broader rule (same pods, same direction) already allows is dead weight.
fn shadowed(policies: &PolicySet, pi: usize, out: &mut Vec<Finding>) {
    let p = &policies.policies[pi];
    for (d, i, rule) in rules_of(p) {
        let mut by = None;
        'search: for &qi in policies.in_namespace(&p.namespace) {
            let q = &policies.policies[qi];
            if !(q.pod_selector.is_everything() || q.pod_selector == p.pod_selector) {
                continue;
            }
            for (j, other) in q.rules(d).unwrap_or_default().iter().enumerate() {
                if qi == pi && j == i {
                    continue;
                }
                let covers = rule.peers.iter().all(|n| peer_covered(n, &other.peers))
                    && (!rule.peers.is_empty() || other.peers.is_empty())
                    && rule.ports.iter().all(|n| port_covered(n, &other.ports))
                    && (!rule.ports.is_empty() || other.ports.is_empty());
                // Two identical rules shadow each other; report only the later one.
                let identical = other.peers.len() == rule.peers.len()
                    && rule.ports.iter().all(|n| port_covered(n, &other.ports))
                    && other.ports.iter().all(|n| port_covered(n, &rule.ports))
                    && rule.peers.iter().all(|n| peer_covered(n, &other.peers))
                    && other.peers.iter().all(|n| peer_covered(n, &rule.peers));
                if covers && !(identical && (qi, j) > (pi, i)) {
                    by = Some((q.key(), j));
                    break 'search;
                }
            }
        }
        if let Some((policy, j)) = by {
            out.push(finding(
                Level::Warning,
                "shadowed-rule",
                p,
                Some(format!("spec.{}[{i}]", d.as_str())),
                format!(
                    "{} rule {i} is shadowed by the broader {policy} {} rule {j}: it allows nothing more, so a change to it will not do what you expect",
                    d.as_str(),
                    d.as_str()
                ),
            ));
        }
    }
}

/// Namespaces with pods or policies but no default-deny for ingress.
fn default_deny(policies: &PolicySet, pods: Option<&Cluster>, out: &mut Vec<Finding>) {
    let mut namespaces: BTreeSet<String> = policies
        .policies
        .iter()
        .map(|p| p.namespace.clone())
        .collect();
    if let Some(cluster) = pods {
        namespaces.extend(
            cluster
                .pods
                .iter()
                .map(|p| cluster.namespaces[p.namespace].name.clone()),
        );
    }
    for ns in namespaces {
        let denies = policies.in_namespace(&ns).iter().any(|&i| {
            let p = &policies.policies[i];
            p.pod_selector.is_everything() && p.ingress.as_ref().is_some_and(Vec::is_empty)
        });
        if !denies {
            let file = policies
                .in_namespace(&ns)
                .first()
                .map(|&i| policies.policies[i].origin.clone())
                .unwrap_or_default();
            out.push(Finding {
                level: Level::Warning,
                code: "no-default-deny",
                file,
                policy: ns.clone(),
                field: None,
                message: format!(
                    "namespace {ns} has no default-deny (podSelector: {{}} with policyTypes [Ingress] and no rules): pods no policy selects accept traffic from anywhere"
                ),
            });
        }
    }
}
