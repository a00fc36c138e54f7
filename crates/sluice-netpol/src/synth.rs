//! A realistic synthetic cluster and policy set, for benchmarks and for trying `netpol` at scale.
//!
//! Namespaces carry team/env labels; each holds apps of a few replicas with the labels a
//! Deployment gives its pods (`app`, `tier`, `version`, `pod-template-hash`) and named container
//! ports. Each namespace gets a default-deny; the remaining policies are the allow rules teams
//! write: same-namespace tiers on a named port, monitoring from another namespace, CIDR blocks
//! with exceptions and port ranges, egress to DNS, a database and the internet, and set-based
//! selectors.

use std::collections::BTreeMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::cluster::{ClusterFile, NamespaceFile, PodFile, PortFile};
use crate::error::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct SynthSpec {
    /// Namespaces.
    pub namespaces: usize,
    /// Pods in total.
    pub pods: usize,
    /// NetworkPolicies in total.
    pub policies: usize,
    /// Random seed (same seed, same output).
    pub seed: u64,
}

/// The generated snapshot: the cluster and the policies per namespace.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// `cluster.json`.
    pub cluster: ClusterFile,
    /// Policies by namespace.
    pub policies: BTreeMap<String, Vec<Value>>,
}

const TEAMS: [&str; 6] = [
    "payments", "search", "identity", "catalog", "growth", "platform",
];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const TIERS: [&str; 3] = ["front", "back", "data"];

struct App {
    name: String,
    tier: &'static str,
}

/// Generates a snapshot.
pub fn generate(spec: &SynthSpec) -> Result<Synthetic> {
    if spec.namespaces == 0 {
        return Err(Error::Invalid("--namespaces must be at least 1".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut cluster = ClusterFile::default();
    let ns_names: Vec<String> = (0..spec.namespaces).map(|i| format!("ns-{i:04}")).collect();
    for (i, name) in ns_names.iter().enumerate() {
        let mut labels = BTreeMap::new();
        // The first namespace plays the monitoring namespace other policies admit.
        let team = if i == 0 {
            "monitoring"
        } else {
            TEAMS[rng.random_range(0..TEAMS.len())]
        };
        labels.insert("team".to_owned(), team.to_owned());
        labels.insert(
            "env".to_owned(),
            ENVS[rng.random_range(0..ENVS.len())].to_owned(),
        );
        cluster
            .namespaces
            .insert(name.clone(), NamespaceFile { labels });
    }
    let mut apps: Vec<App> = Vec::new();
    let mut apps_by_ns: Vec<Vec<usize>> = vec![Vec::new(); spec.namespaces];
    let mut made = 0usize;
    let mut app_no = 0usize;
    while made < spec.pods {
        let ns = app_no % spec.namespaces;
        let tier = TIERS[rng.random_range(0..TIERS.len())];
        let name = format!("app-{app_no}");
        let replicas = rng.random_range(2..9).min(spec.pods - made);
        let hash = format!("{:08x}", rng.random::<u32>());
        let version = if rng.random_bool(0.8) { "v1" } else { "v2" };
        for r in 0..replicas {
            let mut labels = BTreeMap::new();
            labels.insert("app".to_owned(), name.clone());
            labels.insert("tier".to_owned(), tier.to_owned());
            labels.insert("version".to_owned(), version.to_owned());
            labels.insert("pod-template-hash".to_owned(), hash.clone());
            let mut ports = vec![
                PortFile {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: None,
                },
                PortFile {
                    name: Some("metrics".into()),
                    port: 9100,
                    protocol: None,
                },
            ];
            if tier == "data" {
                ports.push(PortFile {
                    name: Some("pg".into()),
                    port: 5432,
                    protocol: None,
                });
            }
            let ip = 0x0a00_0000u32 + 1 + made as u32;
            cluster.pods.push(PodFile {
                namespace: ns_names[ns].clone(),
                name: format!("{name}-{hash}-{r}"),
                labels,
                ip: Some(std::net::Ipv4Addr::from(ip).to_string()),
                ports,
            });
            made += 1;
        }
        apps_by_ns[ns].push(apps.len());
        apps.push(App { name, tier });
        app_no += 1;
    }

    let mut policies: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for i in 0..spec.policies {
        let ns = i % spec.namespaces;
        let namespace = &ns_names[ns];
        let metadata = |name: String| json!({"name": name, "namespace": namespace});
        let policy = if i < spec.namespaces {
            let types = if rng.random_bool(0.5) {
                json!(["Ingress"])
            } else {
                json!(["Ingress", "Egress"])
            };
            json!({"metadata": metadata("default-deny".into()),
                   "spec": {"podSelector": {}, "policyTypes": types}})
        } else if apps_by_ns[ns].is_empty() {
            json!({"metadata": metadata(format!("allow-{i}")),
                   "spec": {"podSelector": {"matchLabels": {"tier": "front"}},
                            "ingress": [{"ports": [{"port": "http"}]}]}})
        } else {
            let target = &apps[apps_by_ns[ns][rng.random_range(0..apps_by_ns[ns].len())]];
            let selector = json!({"matchLabels": {"app": target.name}});
            let other_app = |rng: &mut ChaCha8Rng| {
                let list = &apps_by_ns[ns];
                apps[list[rng.random_range(0..list.len())]].name.clone()
            };
            let spec = match rng.random_range(0..6) {
                0 => json!({"podSelector": selector, "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"tier": "front"}}},
                             {"podSelector": {"matchLabels": {"app": other_app(&mut rng)}}}],
                    "ports": [{"port": "http"}]}]}),
                1 => json!({"podSelector": selector, "ingress": [{
                    "from": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}},
                              "podSelector": {}}],
                    "ports": [{"port": "metrics"}, {"port": 9100, "protocol": "TCP"}]}]}),
                2 => {
                    let hole = rng.random_range(0..255);
                    json!({"podSelector": selector, "ingress": [{
                        "from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                              "except": [format!("10.{hole}.0.0/16")]}}],
                        "ports": [{"port": 8080, "endPort": 8090}]}]})
                }
                3 => json!({"podSelector": selector, "policyTypes": ["Egress"], "egress": [
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns_names[0]}}}],
                     "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                    {"to": [{"podSelector": {"matchLabels": {"tier": "data"}}}],
                     "ports": [{"port": "pg"}]},
                    {"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                         "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
                     "ports": [{"port": 443}]}]}),
                4 => {
                    let env = ENVS[rng.random_range(0..2)];
                    json!({"podSelector": {"matchExpressions": [
                            {"key": "app", "operator": "In", "values": [target.name]},
                            {"key": "version", "operator": "Exists"}]},
                        "ingress": [{"from": [{
                            "namespaceSelector": {"matchExpressions": [
                                {"key": "env", "operator": "In", "values": [env, "staging"]}]},
                            "podSelector": {"matchExpressions": [
                                {"key": "tier", "operator": "NotIn", "values": ["data"]}]}}],
                        "ports": [{"port": "http"}]}]})
                }
                _ => json!({"podSelector": selector, "ingress": [{
                    "from": [{"podSelector": {"matchLabels": {"tier": if target.tier == "data" { "back" } else { "front" }}}}]}]}),
            };
            json!({"metadata": metadata(format!("allow-{}-{i}", target.name)), "spec": spec})
        };
        let mut object = serde_json::Map::new();
        object.insert("apiVersion".into(), json!("networking.k8s.io/v1"));
        object.insert("kind".into(), json!("NetworkPolicy"));
        if let Value::Object(rest) = policy {
            object.extend(rest);
        }
        policies
            .entry(namespace.clone())
            .or_default()
            .push(Value::Object(object));
    }
    Ok(Synthetic { cluster, policies })
}

/// Writes `DIR/cluster.json` and `DIR/policies/<namespace>.yaml`.
pub fn write(synthetic: &Synthetic, dir: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let policy_dir = dir.join("policies");
    std::fs::create_dir_all(&policy_dir).map_err(io(&policy_dir))?;
    let cluster_path = dir.join("cluster.json");
    let text = serde_json::to_string(&synthetic.cluster)
        .map_err(|e| Error::Invalid(format!("serializing the cluster: {e}")))?;
    std::fs::write(&cluster_path, text).map_err(io(&cluster_path))?;
    for (namespace, docs) in &synthetic.policies {
        let mut text = String::new();
        sluice_manifest::write_yaml_stream(docs, &mut text);
        let path = policy_dir.join(format!("{namespace}.yaml"));
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}
