//! Workloads and Services read from rendered manifests.

use serde_json::Value;

use crate::cluster::{Cluster, ContainerPort};
use crate::docs::{Document, kind_of};
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::policy::Protocol;

/// A workload: something that runs pods from a template.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`, `CronJob` or `Pod`.
    pub kind: String,
    /// Namespace (`default` when unset).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels of its pods.
    pub pod_labels: Labels,
    /// Annotations of the workload and of its pod template.
    pub annotations: Labels,
    /// Container ports of its pods (all containers).
    pub ports: Vec<ContainerPort>,
    /// Strings from environment variables, args and commands, where in-app flows are named.
    pub config: Vec<(String, String)>,
    /// Whether its pods use the host network (policies do not apply to them).
    pub host_network: bool,
    /// Where it was read from.
    pub origin: String,
}

/// A Service port.
#[derive(Debug, Clone)]
pub struct ServicePort {
    /// Port name.
    pub name: Option<String>,
    /// The Service's port.
    pub port: u16,
    /// `targetPort`: a number or a container port name (defaults to `port`).
    pub target: Target,
    /// Protocol.
    pub protocol: Protocol,
}

/// A Service `targetPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A port number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// A Service.
#[derive(Debug, Clone)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod selector (`None` for Services without one).
    pub selector: Option<Labels>,
    /// Ports.
    pub ports: Vec<ServicePort>,
}

/// Workloads and Services found in a set of documents.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Services.
    pub services: Vec<Service>,
}

const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

fn labels_at(value: Option<&Value>) -> Labels {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ptr<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    value.pointer(path)
}

impl Inventory {
    /// Collects workloads and Services; other kinds are ignored.
    pub fn from_documents(docs: &[Document]) -> Result<Self> {
        let mut inv = Self::default();
        for doc in docs {
            let (kind, _) = kind_of(&doc.value);
            let v = &doc.value;
            let name = ptr(v, "/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let namespace = ptr(v, "/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned();
            let object = format!("{kind} {namespace}/{name}");
            if kind == "Service" {
                inv.services
                    .push(service(v, &doc.origin, &object, namespace, name)?);
                continue;
            }
            if !WORKLOAD_KINDS.contains(&kind) {
                continue;
            }
            let template = match kind {
                "Pod" => Some(v),
                "CronJob" => ptr(v, "/spec/jobTemplate/spec/template"),
                _ => ptr(v, "/spec/template"),
            };
            let Some(template) = template else {
                return Err(Error::field(
                    &doc.origin,
                    &object,
                    "spec.template",
                    "is missing",
                ));
            };
            let mut annotations = labels_at(ptr(v, "/metadata/annotations"));
            annotations.extend(labels_at(ptr(template, "/metadata/annotations")));
            let pod_spec = ptr(template, "/spec");
            let mut ports = Vec::new();
            let mut config = Vec::new();
            for list in ["containers", "initContainers"] {
                for c in pod_spec
                    .and_then(|s| s.get(list))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for p in c
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let Some(number) = p
                            .get("containerPort")
                            .and_then(Value::as_u64)
                            .and_then(|n| u16::try_from(n).ok())
                            .filter(|&n| n > 0)
                        else {
                            return Err(Error::field(
                                &doc.origin,
                                &object,
                                format!("{list}[].ports[].containerPort"),
                                "must be a port number between 1 and 65535",
                            ));
                        };
                        let protocol = match p.get("protocol").and_then(Value::as_str) {
                            None => Protocol::Tcp,
                            Some(s) => Protocol::parse(s).map_err(|m| {
                                Error::field(
                                    &doc.origin,
                                    &object,
                                    format!("{list}[].ports[].protocol"),
                                    m,
                                )
                            })?,
                        };
                        ports.push(ContainerPort {
                            name: p.get("name").and_then(Value::as_str).map(str::to_owned),
                            port: number,
                            protocol,
                        });
                    }
                    for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                        if let (Some(k), Some(val)) = (
                            e.get("name").and_then(Value::as_str),
                            e.get("value").and_then(Value::as_str),
                        ) {
                            config.push((format!("env {k}"), val.to_owned()));
                        }
                    }
                    for field in ["args", "command"] {
                        for a in c.get(field).and_then(Value::as_array).into_iter().flatten() {
                            if let Some(s) = a.as_str() {
                                config.push((field.to_owned(), s.to_owned()));
                            }
                        }
                    }
                }
            }
            inv.workloads.push(Workload {
                kind: kind.to_owned(),
                namespace,
                name,
                pod_labels: labels_at(ptr(template, "/metadata/labels")),
                annotations,
                ports,
                config,
                host_network: pod_spec
                    .and_then(|s| s.get("hostNetwork"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                origin: doc.origin.clone(),
            });
        }
        // ConfigMaps often carry the URLs an app calls; attribute them to every workload of
        // the namespace that mounts or references the map by name.
        for doc in docs {
            if kind_of(&doc.value).0 != "ConfigMap" {
                continue;
            }
            let v = &doc.value;
            let ns = ptr(v, "/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            let Some(cm) = ptr(v, "/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let data: Vec<(String, String)> = ptr(v, "/data")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    v.as_str()
                        .map(|s| (format!("configmap {cm} {k}"), s.to_owned()))
                })
                .collect();
            for (w, wdoc) in inv.workloads.iter_mut().zip(workload_docs(docs)) {
                if w.namespace == ns && wdoc.value.to_string().contains(&format!("\"{cm}\"")) {
                    w.config.extend(data.iter().cloned());
                }
            }
        }
        Ok(inv)
    }

    /// A cluster snapshot with one pod per workload (for checks that need pods).
    pub fn as_cluster(&self) -> Cluster {
        let mut cluster = Cluster::default();
        for w in self.workloads.iter().filter(|w| !w.host_network) {
            cluster.add_pod(
                &w.namespace,
                &format!("{}-{}", w.kind.to_lowercase(), w.name),
                w.pod_labels.clone(),
                None,
                w.ports.clone(),
            );
        }
        cluster
    }
}

fn workload_docs(docs: &[Document]) -> impl Iterator<Item = &Document> {
    docs.iter()
        .filter(|d| WORKLOAD_KINDS.contains(&kind_of(&d.value).0))
}

fn service(
    v: &Value,
    origin: &str,
    object: &str,
    namespace: String,
    name: String,
) -> Result<Service> {
    let selector = ptr(v, "/spec/selector")
        .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
        .map(|s| labels_at(Some(s)));
    let mut ports = Vec::new();
    for (i, p) in ptr(v, "/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::field(
                    origin,
                    object,
                    format!("spec.ports[{i}].port"),
                    "must be a port number",
                )
            })?;
        let target = match p.get("targetPort") {
            None | Some(Value::Null) => Target::Number(port),
            Some(Value::String(s)) => match s.parse::<u16>() {
                Ok(n) => Target::Number(n),
                Err(_) => Target::Name(s.clone()),
            },
            Some(t) => Target::Number(
                t.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        Error::field(
                            origin,
                            object,
                            format!("spec.ports[{i}].targetPort"),
                            "must be a port number or name",
                        )
                    })?,
            ),
        };
        let protocol = match p.get("protocol").and_then(Value::as_str) {
            None => Protocol::Tcp,
            Some(s) => Protocol::parse(s).map_err(|m| {
                Error::field(origin, object, format!("spec.ports[{i}].protocol"), m)
            })?,
        };
        ports.push(ServicePort {
            name: p.get("name").and_then(Value::as_str).map(str::to_owned),
            port,
            target,
            protocol,
        });
    }
    Ok(Service {
        namespace,
        name,
        selector,
        ports,
    })
}
