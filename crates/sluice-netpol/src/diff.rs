//! What-if: which pod-to-pod flows a policy change newly blocks or newly allows.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::docs::PolicySet;
use crate::matrix::Reachability;
use crate::policy::{PortSel, Protocol};

/// A flow whose verdict changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedFlow {
    /// Source pod.
    pub from: String,
    /// Destination pod.
    pub to: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub protocol: &'static str,
}

/// The result of a what-if.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDiff {
    /// Ports examined.
    pub ports: Vec<String>,
    /// Allowed before, blocked after.
    pub newly_blocked: Vec<ChangedFlow>,
    /// Blocked before, allowed after.
    pub newly_allowed: Vec<ChangedFlow>,
}

/// The ports worth examining: every container port, and every port a policy names.
pub fn ports_of_interest(cluster: &Cluster, sets: &[&PolicySet]) -> Vec<(u16, Protocol)> {
    let mut ports = BTreeSet::new();
    for pod in &cluster.pods {
        for cp in &pod.ports {
            ports.insert((cp.port, cp.protocol));
        }
    }
    for set in sets {
        for p in &set.policies {
            for rule in p.ingress.iter().flatten().chain(p.egress.iter().flatten()) {
                for pr in &rule.ports {
                    if let PortSel::Range(a, b) = pr.port {
                        ports.insert((a, pr.protocol));
                        ports.insert((b, pr.protocol));
                    }
                }
            }
        }
    }
    ports.into_iter().collect()
}

/// Compares two policy sets on the given ports over every ordered pair of distinct pods.
pub fn diff(
    cluster: &Cluster,
    before: &PolicySet,
    after: &PolicySet,
    ports: &[(u16, Protocol)],
) -> PolicyDiff {
    let mut out = PolicyDiff {
        ports: ports.iter().map(|(p, pr)| format!("{pr}/{p}")).collect(),
        ..PolicyDiff::default()
    };
    let n = cluster.pods.len();
    let keys: Vec<String> = (0..n).map(|p| cluster.pod_key(p)).collect();
    for &(port, protocol) in ports {
        let old = Reachability::compute(cluster, before, port, protocol);
        let new = Reachability::compute(cluster, after, port, protocol);
        for s in 0..n {
            for d in 0..n {
                let (was, is) = (old.allowed(s, d), new.allowed(s, d));
                if was == is {
                    continue;
                }
                let flow = ChangedFlow {
                    from: keys[s].clone(),
                    to: keys[d].clone(),
                    port,
                    protocol: protocol.as_str(),
                };
                if was {
                    out.newly_blocked.push(flow);
                } else {
                    out.newly_allowed.push(flow);
                }
            }
        }
    }
    out
}
