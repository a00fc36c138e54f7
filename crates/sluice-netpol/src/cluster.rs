//! A cluster snapshot: namespaces with labels, pods with labels, IPs and container ports.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cidr::parse_ip;
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::policy::Protocol;

/// The label the API server puts on every namespace (since Kubernetes 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `CLUSTER.json` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ClusterFile {
    /// Namespaces by name.
    #[serde(default)]
    pub namespaces: BTreeMap<String, NamespaceFile>,
    /// Pods.
    #[serde(default)]
    pub pods: Vec<PodFile>,
}

/// A namespace as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NamespaceFile {
    /// Namespace labels.
    #[serde(default)]
    pub labels: Labels,
}

/// A pod as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PodFile {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod labels.
    #[serde(default)]
    pub labels: Labels,
    /// Pod IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Container ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortFile>,
}

/// A container port as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PortFile {
    /// Port name (what named ports in policies refer to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port number.
    #[serde(alias = "containerPort")]
    pub port: u16,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A namespace.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels, including the implicit `kubernetes.io/metadata.name`.
    pub labels: Labels,
}

/// A pod.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Index of its namespace in [`Cluster::namespaces`].
    pub namespace: usize,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// IP address, if known.
    pub ip: Option<IpAddr>,
    /// Container ports.
    pub ports: Vec<ContainerPort>,
}

/// A container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    /// Name, if any.
    pub name: Option<String>,
    /// Number.
    pub port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// A validated cluster snapshot with lookup indexes.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    /// Namespaces (those named by pods but not listed get only the implicit label).
    pub namespaces: Vec<Namespace>,
    /// Pods, in input order.
    pub pods: Vec<Pod>,
    namespace_index: HashMap<String, usize>,
    pod_index: HashMap<String, usize>,
}

impl Cluster {
    /// Reads `CLUSTER.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates a cluster snapshot; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let file: ClusterFile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                Error::Syntax {
                    origin: origin.to_owned(),
                    message: inner.to_string(),
                }
            } else {
                Error::field(origin, "cluster", path, inner.to_string())
            }
        })?;
        Self::from_file(file, origin)
    }

    /// Validates a parsed snapshot.
    pub fn from_file(file: ClusterFile, origin: &str) -> Result<Self> {
        let mut cluster = Self::default();
        for (name, ns) in file.namespaces {
            for (key, value) in &ns.labels {
                crate::labels::check_key(key)
                    .and_then(|()| crate::labels::check_value(value))
                    .map_err(|m| {
                        Error::field(origin, "cluster", format!("namespaces.{name}.labels"), m)
                    })?;
            }
            cluster.add_namespace(&name, ns.labels);
        }
        for (i, pod) in file.pods.into_iter().enumerate() {
            let field = |f: &str| format!("pods[{i}].{f}");
            if pod.namespace.is_empty() {
                return Err(Error::field(
                    origin,
                    "cluster",
                    field("namespace"),
                    "is empty",
                ));
            }
            if pod.name.is_empty() {
                return Err(Error::field(origin, "cluster", field("name"), "is empty"));
            }
            let ip = pod
                .ip
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(parse_ip)
                .transpose()
                .map_err(|m| Error::field(origin, "cluster", field("ip"), m))?;
            let mut ports = Vec::with_capacity(pod.ports.len());
            for (j, p) in pod.ports.iter().enumerate() {
                let protocol = match p.protocol.as_deref() {
                    None | Some("") => Protocol::Tcp,
                    Some(s) => Protocol::parse(s).map_err(|m| {
                        Error::field(origin, "cluster", field(&format!("ports[{j}].protocol")), m)
                    })?,
                };
                if p.port == 0 {
                    return Err(Error::field(
                        origin,
                        "cluster",
                        field(&format!("ports[{j}].port")),
                        "must be between 1 and 65535",
                    ));
                }
                ports.push(ContainerPort {
                    name: p.name.clone().filter(|n| !n.is_empty()),
                    port: p.port,
                    protocol,
                });
            }
            let key = format!("{}/{}", pod.namespace, pod.name);
            if cluster.pod_index.contains_key(&key) {
                return Err(Error::Duplicate {
                    object: format!("Pod {key}"),
                    first: origin.to_owned(),
                    second: field("name"),
                });
            }
            cluster.add_pod(&pod.namespace, &pod.name, pod.labels, ip, ports);
        }
        Ok(cluster)
    }

    /// Adds (or finds) a namespace; the implicit name label is always set to its name.
    pub fn add_namespace(&mut self, name: &str, mut labels: Labels) -> usize {
        if let Some(&i) = self.namespace_index.get(name) {
            return i;
        }
        // The API server sets this label itself and keeps it equal to the name.
        labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned());
        self.namespaces.push(Namespace {
            name: name.to_owned(),
            labels,
        });
        self.namespace_index
            .insert(name.to_owned(), self.namespaces.len() - 1);
        self.namespaces.len() - 1
    }

    /// Adds a pod (its namespace is created if needed) and returns its index.
    pub fn add_pod(
        &mut self,
        namespace: &str,
        name: &str,
        labels: Labels,
        ip: Option<IpAddr>,
        ports: Vec<ContainerPort>,
    ) -> usize {
        let ns = self.add_namespace(namespace, Labels::new());
        self.pods.push(Pod {
            namespace: ns,
            name: name.to_owned(),
            labels,
            ip,
            ports,
        });
        let index = self.pods.len() - 1;
        self.pod_index.insert(format!("{namespace}/{name}"), index);
        index
    }

    /// The index of a namespace by name.
    pub fn namespace(&self, name: &str) -> Option<usize> {
        self.namespace_index.get(name).copied()
    }

    /// The index of a pod by `namespace/name`.
    pub fn pod(&self, key: &str) -> Option<usize> {
        self.pod_index.get(key).copied()
    }

    /// `namespace/name` of a pod.
    pub fn pod_key(&self, pod: usize) -> String {
        let p = &self.pods[pod];
        format!("{}/{}", self.namespaces[p.namespace].name, p.name)
    }

    /// The namespace name of a pod.
    pub fn pod_namespace(&self, pod: usize) -> &str {
        &self.namespaces[self.pods[pod].namespace].name
    }
}
