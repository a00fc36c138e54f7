//! Evaluation of one flow with upstream Kubernetes semantics, and the reasons behind it.
//!
//! A flow is allowed when the source may send it (egress) and the destination may receive it
//! (ingress). A pod is isolated in a direction when some policy of that direction selects it;
//! an isolated pod's traffic in that direction must match at least one rule of one of those
//! policies (policies are additive). Traffic from a pod to itself is always allowed.

use std::net::IpAddr;

use crate::cluster::Cluster;
use crate::docs::PolicySet;
use crate::policy::{Direction, Peer, PortSel, Protocol, Rule};

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A pod of the cluster, by index.
    Pod(usize),
    /// An address outside the pod set.
    External(IpAddr),
}

/// A connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Source.
    pub from: Endpoint,
    /// Destination.
    pub to: Endpoint,
    /// Destination port.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A rule of a policy, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef {
    /// Policy index in the set.
    pub policy: usize,
    /// Rule index in `spec.ingress` / `spec.egress`.
    pub rule: usize,
}

/// How one rule fared against the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCheck {
    /// The rule.
    pub rule: RuleRef,
    /// Whether its ports cover the flow's port and protocol.
    pub ports_match: bool,
    /// Whether one of its peers is the other end of the flow.
    pub peers_match: bool,
}

/// The verdict of one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideVerdict {
    /// The direction.
    pub direction: Direction,
    /// The pod whose policies apply (none for an external endpoint).
    pub pod: Option<usize>,
    /// Whether some policy of this direction selects the pod.
    pub isolated: bool,
    /// Whether this direction lets the flow through.
    pub allowed: bool,
    /// Policies of this direction selecting the pod.
    pub policies: Vec<usize>,
    /// Rules that allow the flow.
    pub allowed_by: Vec<RuleRef>,
    /// Every rule considered, with what matched.
    pub checks: Vec<RuleCheck>,
}

/// The verdict on a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the flow is allowed.
    pub allowed: bool,
    /// The flow goes from a pod to itself (always allowed).
    pub self_traffic: bool,
    /// The source's egress.
    pub egress: SideVerdict,
    /// The destination's ingress.
    pub ingress: SideVerdict,
}

/// Evaluates flows against a cluster and a policy set.
#[derive(Debug, Clone, Copy)]
pub struct Evaluator<'a> {
    cluster: &'a Cluster,
    policies: &'a PolicySet,
}

impl<'a> Evaluator<'a> {
    /// An evaluator over a snapshot.
    pub fn new(cluster: &'a Cluster, policies: &'a PolicySet) -> Self {
        Self { cluster, policies }
    }

    /// The full verdict with reasons.
    pub fn evaluate(&self, flow: &Flow) -> Verdict {
        let self_traffic =
            matches!((flow.from, flow.to), (Endpoint::Pod(a), Endpoint::Pod(b)) if a == b);
        let egress = self.side(Direction::Egress, flow, true);
        let ingress = self.side(Direction::Ingress, flow, true);
        Verdict {
            allowed: self_traffic || (egress.allowed && ingress.allowed),
            self_traffic,
            egress,
            ingress,
        }
    }

    /// Only whether the flow is allowed (no allocation; the naive baseline uses this).
    pub fn allowed(&self, flow: &Flow) -> bool {
        if matches!((flow.from, flow.to), (Endpoint::Pod(a), Endpoint::Pod(b)) if a == b) {
            return true;
        }
        self.side_allows(Direction::Egress, flow) && self.side_allows(Direction::Ingress, flow)
    }

    fn subject(direction: Direction, flow: &Flow) -> (Option<usize>, Endpoint) {
        let (own, peer) = match direction {
            Direction::Egress => (flow.from, flow.to),
            Direction::Ingress => (flow.to, flow.from),
        };
        match own {
            Endpoint::Pod(p) => (Some(p), peer),
            Endpoint::External(_) => (None, peer),
        }
    }

    fn side_allows(&self, direction: Direction, flow: &Flow) -> bool {
        let (Some(pod), peer) = Self::subject(direction, flow) else {
            return true;
        };
        let labels = &self.cluster.pods[pod].labels;
        let mut isolated = false;
        for &pi in self.policies.in_namespace(self.cluster.pod_namespace(pod)) {
            let policy = &self.policies.policies[pi];
            let Some(rules) = policy.rules(direction) else {
                continue;
            };
            if !policy.pod_selector.matches(labels) {
                continue;
            }
            isolated = true;
            if rules
                .iter()
                .any(|r| self.ports_match(r, flow) && self.peers_match(r, &policy.namespace, peer))
            {
                return true;
            }
        }
        !isolated
    }

    fn side(&self, direction: Direction, flow: &Flow, detail: bool) -> SideVerdict {
        let (pod, peer) = Self::subject(direction, flow);
        let mut verdict = SideVerdict {
            direction,
            pod,
            isolated: false,
            allowed: true,
            policies: Vec::new(),
            allowed_by: Vec::new(),
            checks: Vec::new(),
        };
        let Some(pod) = pod else {
            return verdict;
        };
        let labels = &self.cluster.pods[pod].labels;
        for &pi in self.policies.in_namespace(self.cluster.pod_namespace(pod)) {
            let policy = &self.policies.policies[pi];
            let Some(rules) = policy.rules(direction) else {
                continue;
            };
            if !policy.pod_selector.matches(labels) {
                continue;
            }
            verdict.policies.push(pi);
            for (ri, rule) in rules.iter().enumerate() {
                let check = RuleCheck {
                    rule: RuleRef {
                        policy: pi,
                        rule: ri,
                    },
                    ports_match: self.ports_match(rule, flow),
                    peers_match: self.peers_match(rule, &policy.namespace, peer),
                };
                if check.ports_match && check.peers_match {
                    verdict.allowed_by.push(check.rule);
                }
                if detail {
                    verdict.checks.push(check);
                }
            }
        }
        verdict.isolated = !verdict.policies.is_empty();
        verdict.allowed = !verdict.isolated || !verdict.allowed_by.is_empty();
        verdict
    }

    /// Whether a rule's ports cover the flow; named ports resolve on the destination pod.
    pub fn ports_match(&self, rule: &Rule, flow: &Flow) -> bool {
        if rule.ports.is_empty() {
            return true;
        }
        rule.ports.iter().any(|p| {
            p.protocol == flow.protocol
                && match &p.port {
                    PortSel::Any => true,
                    PortSel::Range(a, b) => (*a..=*b).contains(&flow.port),
                    PortSel::Named(name) => match flow.to {
                        Endpoint::Pod(d) => self.cluster.pods[d].ports.iter().any(|cp| {
                            cp.name.as_deref() == Some(name.as_str())
                                && cp.protocol == p.protocol
                                && cp.port == flow.port
                        }),
                        Endpoint::External(_) => false,
                    },
                }
        })
    }

    /// Whether one of a rule's peers is `peer` (an empty peer list matches everything).
    pub fn peers_match(&self, rule: &Rule, policy_namespace: &str, peer: Endpoint) -> bool {
        if rule.peers.is_empty() {
            return true;
        }
        rule.peers
            .iter()
            .any(|p| self.peer_matches(p, policy_namespace, peer))
    }

    /// Whether one peer matches an endpoint.
    pub fn peer_matches(&self, peer: &Peer, policy_namespace: &str, endpoint: Endpoint) -> bool {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let Endpoint::Pod(i) = endpoint else {
                    return false;
                };
                let pod = &self.cluster.pods[i];
                let ns = &self.cluster.namespaces[pod.namespace];
                let ns_ok = match namespaces {
                    None => ns.name == policy_namespace,
                    Some(sel) => sel.matches(&ns.labels),
                };
                ns_ok && pods.as_ref().is_none_or(|sel| sel.matches(&pod.labels))
            }
            Peer::IpBlock { cidr, except } => {
                let ip = match endpoint {
                    Endpoint::Pod(i) => match self.cluster.pods[i].ip {
                        Some(ip) => ip,
                        None => return false,
                    },
                    Endpoint::External(ip) => ip,
                };
                cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
            }
        }
    }
}
