//! The full reachability matrix for one port, computed over equivalence classes of pods.
//!
//! Two pods that every policy selector, every rule peer and every named-port lookup treat the
//! same way ("atoms") have identical rows and columns in the matrix, so the matrix is computed
//! once per pair of atoms and the counts are weighted by atom sizes. The result is exact: it is
//! the same answer as evaluating every ordered pair (the tests compare it with
//! [`naive_summary`], which does exactly that).

use std::collections::HashMap;

use fixedbitset::FixedBitSet;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::docs::PolicySet;
use crate::eval::{Endpoint, Evaluator, Flow};
use crate::labels::{Operator, Selector};
use crate::policy::{Direction, Peer, PortSel, Protocol, Rule};

/// Counts over every ordered pair of distinct pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Ordered pairs of distinct pods.
    pub pairs: u64,
    /// Pairs whose flow is allowed.
    pub allowed: u64,
    /// Pairs whose flow is blocked.
    pub denied: u64,
}

/// Reachability between all pods for one port and protocol.
#[derive(Debug, Clone)]
pub struct Reachability {
    atom_of: Vec<u32>,
    atom_sizes: Vec<u64>,
    /// `allowed[s]` holds the destination atoms atom `s` may reach.
    allowed: Vec<FixedBitSet>,
}

impl Reachability {
    /// Computes the matrix.
    pub fn compute(cluster: &Cluster, policies: &PolicySet, port: u16, protocol: Protocol) -> Self {
        let index = PodIndex::new(cluster);
        let n = cluster.pods.len();
        let mut features: Vec<FixedBitSet> = Vec::new();
        let mut cache: HashMap<String, usize> = HashMap::new();

        // Which pods each policy selects, per direction it applies to.
        let mut selects: Vec<Option<usize>> = Vec::with_capacity(policies.policies.len());
        for policy in &policies.policies {
            if policy.ingress.is_none() && policy.egress.is_none() {
                selects.push(None);
                continue;
            }
            // Identical selectors (copy-pasted peers are the norm) are computed once.
            let key = format!("{}\u{0}{:?}", policy.namespace, policy.pod_selector);
            let feature = *cache.entry(key).or_insert_with(|| {
                let mut set = FixedBitSet::with_capacity(n);
                if let Some(ns) = cluster.namespace(&policy.namespace) {
                    index.select(ns, &policy.pod_selector, &mut set);
                }
                features.push(set);
                features.len() - 1
            });
            selects.push(Some(feature));
        }

        // Per rule: its peers as a pod set, and whether its ports cover the probe on a pod.
        let mut rules: HashMap<(usize, Direction, usize), CompiledRule> = HashMap::new();
        for (pi, policy) in policies.policies.iter().enumerate() {
            for direction in [Direction::Ingress, Direction::Egress] {
                for (ri, rule) in policy
                    .rules(direction)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let peers = if rule.peers.is_empty() {
                        PodSet::All
                    } else {
                        // Only selector peers without a namespaceSelector depend on the
                        // policy's namespace.
                        let local = rule.peers.iter().any(|p| {
                            matches!(
                                p,
                                Peer::Pods {
                                    namespaces: None,
                                    ..
                                }
                            )
                        });
                        let ns = if local { policy.namespace.as_str() } else { "" };
                        let key = format!("peers\u{0}{ns}\u{0}{:?}", rule.peers);
                        PodSet::Feature(*cache.entry(key).or_insert_with(|| {
                            let mut set = FixedBitSet::with_capacity(n);
                            for peer in &rule.peers {
                                index.add_peer(cluster, peer, &policy.namespace, &mut set);
                            }
                            features.push(set);
                            features.len() - 1
                        }))
                    };
                    let ports = match port_check(rule, port, protocol) {
                        PortCheck::Always => PodSet::All,
                        PortCheck::Never => PodSet::None,
                        PortCheck::Named(mut names) => {
                            names.sort();
                            names.dedup();
                            let key = format!("ports\u{0}{names:?}");
                            if let Some(&f) = cache.get(&key) {
                                rules.insert(
                                    (pi, direction, ri),
                                    CompiledRule {
                                        peers,
                                        ports: PodSet::Feature(f),
                                    },
                                );
                                continue;
                            }
                            let mut set = FixedBitSet::with_capacity(n);
                            for (i, pod) in cluster.pods.iter().enumerate() {
                                if pod.ports.iter().any(|cp| {
                                    cp.port == port
                                        && cp.protocol == protocol
                                        && cp.name.as_ref().is_some_and(|n| names.contains(n))
                                }) {
                                    set.insert(i);
                                }
                            }
                            features.push(set);
                            cache.insert(key, features.len() - 1);
                            PodSet::Feature(features.len() - 1)
                        }
                    };
                    rules.insert((pi, direction, ri), CompiledRule { peers, ports });
                }
            }
        }

        let atom_of = refine(n, &features);
        let atoms = atom_of.iter().map(|&a| a as usize + 1).max().unwrap_or(0);
        let mut reps = vec![usize::MAX; atoms];
        let mut atom_sizes = vec![0u64; atoms];
        for (pod, &a) in atom_of.iter().enumerate() {
            if reps[a as usize] == usize::MAX {
                reps[a as usize] = pod;
            }
            atom_sizes[a as usize] += 1;
        }
        let in_set = |set: &PodSet, pod: usize| match set {
            PodSet::All => true,
            PodSet::None => false,
            PodSet::Feature(f) => features[*f].contains(pod),
        };
        let atom_set = |set: &PodSet| -> FixedBitSet {
            let mut out = FixedBitSet::with_capacity(atoms);
            for (a, &rep) in reps.iter().enumerate() {
                if in_set(set, rep) {
                    out.insert(a);
                }
            }
            out
        };
        let mut peer_atoms: HashMap<(usize, Direction, usize), FixedBitSet> = HashMap::new();
        let mut egress_atoms: HashMap<(usize, Direction, usize), FixedBitSet> = HashMap::new();
        let mut full = FixedBitSet::with_capacity(atoms);
        full.insert_range(..);

        // Rows: which source atoms each destination admits, which destinations each source may
        // send to.
        let mut ingress_rows = Vec::with_capacity(atoms);
        let mut egress_rows = Vec::with_capacity(atoms);
        for &rep in &reps {
            let mut ingress: Option<FixedBitSet> = None;
            let mut egress: Option<FixedBitSet> = None;
            for (pi, policy) in policies.policies.iter().enumerate() {
                let Some(sel) = selects[pi] else { continue };
                if !features[sel].contains(rep) {
                    continue;
                }
                if let Some(list) = &policy.ingress {
                    let row = ingress.get_or_insert_with(|| FixedBitSet::with_capacity(atoms));
                    for ri in 0..list.len() {
                        let key = (pi, Direction::Ingress, ri);
                        let rule = &rules[&key];
                        if in_set(&rule.ports, rep) {
                            let peers = peer_atoms
                                .entry(key)
                                .or_insert_with(|| atom_set(&rule.peers));
                            row.union_with(peers);
                        }
                    }
                }
                if let Some(list) = &policy.egress {
                    let row = egress.get_or_insert_with(|| FixedBitSet::with_capacity(atoms));
                    for ri in 0..list.len() {
                        let key = (pi, Direction::Egress, ri);
                        let reach = egress_atoms.entry(key).or_insert_with(|| {
                            let rule = &rules[&key];
                            let mut set = atom_set(&rule.peers);
                            set.intersect_with(&atom_set(&rule.ports));
                            set
                        });
                        row.union_with(reach);
                    }
                }
            }
            ingress_rows.push(ingress);
            egress_rows.push(egress);
        }

        // allowed[s][d] = egress(s) admits d and ingress(d) admits s.
        let mut allowed = Vec::with_capacity(atoms);
        for (s, egress) in egress_rows.iter().enumerate() {
            let mut row = egress.clone().unwrap_or_else(|| full.clone());
            for (d, ingress) in ingress_rows.iter().enumerate() {
                if ingress.as_ref().is_some_and(|r| !r.contains(s)) {
                    row.set(d, false);
                }
            }
            allowed.push(row);
        }
        Self {
            atom_of,
            atom_sizes,
            allowed,
        }
    }

    /// Number of equivalence classes the pods fell into.
    pub fn atoms(&self) -> usize {
        self.atom_sizes.len()
    }

    /// Whether pod `from` may reach pod `to`.
    pub fn allowed(&self, from: usize, to: usize) -> bool {
        from == to || self.allowed[self.atom_of[from] as usize].contains(self.atom_of[to] as usize)
    }

    /// Counts over every ordered pair of distinct pods.
    pub fn summary(&self) -> Summary {
        let n = self.atom_of.len() as u64;
        let mut allowed = 0u64;
        for (s, row) in self.allowed.iter().enumerate() {
            let weight: u64 = row.ones().map(|d| self.atom_sizes[d]).sum();
            allowed += self.atom_sizes[s] * weight;
            if row.contains(s) {
                // Pairs inside one atom exclude a pod paired with itself.
                allowed -= self.atom_sizes[s];
            }
        }
        let pairs = n * n.saturating_sub(1);
        Summary {
            pairs,
            allowed,
            denied: pairs - allowed,
        }
    }
}

/// Every ordered pair evaluated one by one: the baseline the benchmark compares against.
pub fn naive_summary(
    cluster: &Cluster,
    policies: &PolicySet,
    port: u16,
    protocol: Protocol,
) -> Summary {
    let eval = Evaluator::new(cluster, policies);
    let n = cluster.pods.len();
    let mut allowed = 0u64;
    for s in 0..n {
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
    let pairs = (n as u64) * (n as u64).saturating_sub(1);
    Summary {
        pairs,
        allowed,
        denied: pairs - allowed,
    }
}

enum PodSet {
    All,
    None,
    Feature(usize),
}

struct CompiledRule {
    peers: PodSet,
    ports: PodSet,
}

enum PortCheck {
    Always,
    Never,
    Named(Vec<String>),
}

/// Whether a rule's ports cover the probe regardless of the pod, never, or through named ports.
fn port_check(rule: &Rule, port: u16, protocol: Protocol) -> PortCheck {
    if rule.ports.is_empty() {
        return PortCheck::Always;
    }
    let mut names = Vec::new();
    for p in &rule.ports {
        if p.protocol != protocol {
            continue;
        }
        match &p.port {
            PortSel::Any => return PortCheck::Always,
            PortSel::Range(a, b) if (*a..=*b).contains(&port) => return PortCheck::Always,
            PortSel::Range(..) => {}
            PortSel::Named(n) => names.push(n.clone()),
        }
    }
    if names.is_empty() {
        PortCheck::Never
    } else {
        PortCheck::Named(names)
    }
}

/// Splits pods into classes that no feature tells apart. Each feature splits the classes it
/// cuts; only the smaller side of the split is touched, so features covering almost every pod
/// cost almost nothing.
fn refine(n: usize, features: &[FixedBitSet]) -> Vec<u32> {
    let mut class = vec![0u32; n];
    let mut remap: Vec<u32> = vec![u32::MAX];
    let mut touched: Vec<u32> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for feature in features {
        // A feature equal to one already applied cannot split anything further.
        if !seen.insert(feature.as_slice()) {
            continue;
        }
        let count = feature.count_ones(..);
        if count == 0 || count == n {
            continue;
        }
        let mut assign = |pod: usize, class: &mut [u32]| {
            let c = class[pod] as usize;
            if remap[c] == u32::MAX {
                let id = u32::try_from(remap.len()).unwrap_or(u32::MAX);
                remap[c] = id;
                remap.push(u32::MAX);
                touched.push(c as u32);
            }
            class[pod] = remap[c];
        };
        if count * 2 > n {
            // Word-wise complement: `ones` skips empty words, a bit-by-bit scan would not.
            let mut complement = feature.clone();
            complement.toggle_range(..);
            for pod in complement.ones().take_while(|&p| p < n) {
                assign(pod, &mut class);
            }
        } else {
            for pod in feature.ones() {
                assign(pod, &mut class);
            }
        }
        for c in touched.drain(..) {
            remap[c as usize] = u32::MAX;
        }
    }
    // Dense atom numbers in order of first appearance.
    let mut dense: HashMap<u32, u32> = HashMap::new();
    for c in &mut class {
        let next = u32::try_from(dense.len()).unwrap_or(u32::MAX);
        *c = *dense.entry(*c).or_insert(next);
    }
    class
}

/// Label postings per namespace, so selectors touch only candidate pods.
struct PodIndex<'a> {
    cluster: &'a Cluster,
    pods_by_ns: Vec<Vec<usize>>,
    postings: Vec<HashMap<&'a str, HashMap<&'a str, Vec<usize>>>>,
    by_ip: Vec<(std::net::IpAddr, usize)>,
}

impl<'a> PodIndex<'a> {
    fn new(cluster: &'a Cluster) -> Self {
        let mut pods_by_ns = vec![Vec::new(); cluster.namespaces.len()];
        let mut postings: Vec<HashMap<&str, HashMap<&str, Vec<usize>>>> =
            vec![HashMap::new(); cluster.namespaces.len()];
        for (i, pod) in cluster.pods.iter().enumerate() {
            pods_by_ns[pod.namespace].push(i);
            for (k, v) in &pod.labels {
                postings[pod.namespace]
                    .entry(k.as_str())
                    .or_default()
                    .entry(v.as_str())
                    .or_default()
                    .push(i);
            }
        }
        let mut by_ip: Vec<(std::net::IpAddr, usize)> = cluster
            .pods
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.ip.map(|ip| (ip, i)))
            .collect();
        by_ip.sort_unstable();
        Self {
            cluster,
            pods_by_ns,
            postings,
            by_ip,
        }
    }

    /// Adds the pods of namespace `ns` matching `selector`.
    fn select(&self, ns: usize, selector: &Selector, out: &mut FixedBitSet) {
        // The narrowest `In` requirement gives the candidates; everything else is checked.
        let mut best: Option<Vec<&[usize]>> = None;
        let mut best_len = usize::MAX;
        for r in &selector.requirements {
            if let Operator::In(values) = &r.operator {
                let lists: Vec<&[usize]> = values
                    .iter()
                    .filter_map(|v| {
                        self.postings[ns]
                            .get(r.key.as_str())
                            .and_then(|m| m.get(v.as_str()))
                            .map(Vec::as_slice)
                    })
                    .collect();
                let len = lists.iter().map(|l| l.len()).sum();
                if len < best_len {
                    best_len = len;
                    best = Some(lists);
                }
            }
        }
        let check = |pod: usize, out: &mut FixedBitSet| {
            if selector.matches(&self.cluster.pods[pod].labels) {
                out.insert(pod);
            }
        };
        match best {
            Some(lists) => lists
                .iter()
                .flat_map(|l| l.iter())
                .for_each(|&p| check(p, out)),
            None if selector.is_everything() => {
                self.pods_by_ns[ns].iter().for_each(|&p| out.insert(p));
            }
            None => self.pods_by_ns[ns].iter().for_each(|&p| check(p, out)),
        }
    }

    /// Adds the pods a rule peer matches.
    fn add_peer(&self, cluster: &Cluster, peer: &Peer, policy_ns: &str, out: &mut FixedBitSet) {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let everything = Selector::everything();
                let pods = pods.as_ref().unwrap_or(&everything);
                match namespaces {
                    None => {
                        if let Some(ns) = cluster.namespace(policy_ns) {
                            self.select(ns, pods, out);
                        }
                    }
                    Some(sel) => {
                        for (ns, namespace) in cluster.namespaces.iter().enumerate() {
                            if sel.matches(&namespace.labels) {
                                self.select(ns, pods, out);
                            }
                        }
                    }
                }
            }
            Peer::IpBlock { cidr, except } => {
                // Pods sorted by IP: the block is one contiguous slice of them.
                let (low, high) = (cidr.network(), cidr.broadcast());
                let start = self.by_ip.partition_point(|(ip, _)| *ip < low);
                let end = self.by_ip.partition_point(|(ip, _)| *ip <= high);
                for (ip, pod) in &self.by_ip[start..end] {
                    if !except.iter().any(|e| e.contains(ip)) {
                        out.insert(*pod);
                    }
                }
            }
        }
    }
}
