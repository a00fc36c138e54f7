//! The engine-neutral "required traffic" model that every engine renders from.
//!
//! ```yaml
//! defaultDeny: {enabled: true, order: 2000, egress: false}
//! allowOrder: 500
//! workloads:
//! - name: web
//!   namespace: shop
//!   podSelector: {app: web}
//!   ingress:
//!   - from: [{pods: {app: lb}, namespaces: {team: edge}}, {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
//!     ports: [{port: 8080}, {port: http}, {port: 9000, endPort: 9100, protocol: TCP}]
//!   egress:
//!   - to: [{fqdn: api.example.com}]
//!     ports: [{port: 443}]
//! ```

use serde::{Deserialize, Serialize};

use crate::cidr::parse_cidr;
use crate::error::{Error, Result};
use crate::labels::{Labels, check_key, check_value};
use crate::policy::{Protocol, check_port_name};

/// The whole model.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficModel {
    /// The namespace-wide default-deny layer.
    #[serde(default)]
    pub default_deny: DefaultDeny,
    /// Calico `order` / ClusterNetworkPolicy priority of the allowlists (must be below the
    /// default-deny's so the allowlists win).
    #[serde(default = "default_allow_order")]
    pub allow_order: u32,
    /// Workloads and the traffic they need.
    #[serde(default)]
    pub workloads: Vec<WorkloadTraffic>,
}

impl Default for TrafficModel {
    fn default() -> Self {
        Self {
            default_deny: DefaultDeny::default(),
            allow_order: default_allow_order(),
            workloads: Vec::new(),
        }
    }
}

fn default_allow_order() -> u32 {
    500
}

fn default_deny_order() -> u32 {
    2000
}

/// The default-deny layer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefaultDeny {
    /// Render it.
    #[serde(default)]
    pub enabled: bool,
    /// Calico `order` / ClusterNetworkPolicy priority (lower precedence than the allowlists).
    #[serde(default = "default_deny_order")]
    pub order: u32,
    /// Deny egress too (only safe when the allowlists cover egress, DNS and the apiserver).
    #[serde(default)]
    pub egress: bool,
}

impl Default for DefaultDeny {
    fn default() -> Self {
        Self {
            enabled: false,
            order: default_deny_order(),
            egress: false,
        }
    }
}

/// One workload's required traffic.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadTraffic {
    /// Workload name (the policy is named after it).
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Labels of its pods (equality selector).
    pub pod_selector: Labels,
    /// Allowed ingress; `None` leaves ingress unmanaged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<TrafficRule>>,
    /// Allowed egress; `None` leaves egress unmanaged, `[]` denies all egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<TrafficRule>>,
}

/// One allowed flow set: peers times ports.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficRule {
    /// Sources (ingress); empty means everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<TrafficPeer>,
    /// Destinations (egress); empty means everywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<TrafficPeer>,
    /// Ports; empty means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<TrafficPort>,
    /// Why the flow is needed (shown by `generate --explain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The flow was inferred (from configuration), not declared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

/// A peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPeer {
    /// Pod labels (equality); with `namespaces` unset, in the workload's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<Labels>,
    /// Namespace labels (equality); `{}` is every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Labels>,
    /// An address range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// Ranges carved out of `cidr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
    /// A DNS name (egress only; `*.example.com` patterns allowed where the engine has them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
}

/// A port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrafficPort {
    /// Number or container port name.
    pub port: PortValue,
    /// Last port of a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// A port number or name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PortValue {
    /// Number.
    Number(u16),
    /// Container port name.
    Name(String),
}

/// What kind of peer a validated [`TrafficPeer`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerKind<'a> {
    /// Pod and/or namespace selectors.
    Selector {
        /// Pod labels.
        pods: Option<&'a Labels>,
        /// Namespace labels.
        namespaces: Option<&'a Labels>,
    },
    /// An address range.
    Cidr {
        /// The CIDR as written.
        cidr: &'a str,
        /// Exceptions.
        except: &'a [String],
    },
    /// A DNS name.
    Fqdn(&'a str),
}

impl TrafficPeer {
    /// Classifies the peer (after [`TrafficModel::validate`]).
    pub fn kind(&self) -> PeerKind<'_> {
        if let Some(cidr) = &self.cidr {
            PeerKind::Cidr {
                cidr,
                except: &self.except,
            }
        } else if let Some(fqdn) = &self.fqdn {
            PeerKind::Fqdn(fqdn)
        } else {
            PeerKind::Selector {
                pods: self.pods.as_ref(),
                namespaces: self.namespaces.as_ref(),
            }
        }
    }
}

impl TrafficPort {
    /// The protocol (default TCP).
    pub fn protocol(&self) -> Protocol {
        self.protocol
            .as_deref()
            .and_then(|p| Protocol::parse(p).ok())
            .unwrap_or(Protocol::Tcp)
    }
}

impl TrafficModel {
    /// Reads a model from YAML or JSON.
    pub fn from_text(text: &str, origin: &str) -> Result<Self> {
        let docs = sluice_manifest::parse_documents(text, &sluice_manifest::YamlLimits::default())
            .map_err(|e| Error::Syntax {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?;
        let [value] = docs.as_slice() else {
            return Err(Error::Syntax {
                origin: origin.to_owned(),
                message: format!("expected one document, found {}", docs.len()),
            });
        };
        let model: Self = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
            Error::field(
                origin,
                "traffic model",
                e.path().to_string(),
                e.into_inner().to_string(),
            )
        })?;
        model.validate(origin)?;
        Ok(model)
    }

    /// Checks every field; errors name the workload and the field.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in self.workloads.iter().enumerate() {
            let object = format!("workload {}/{}", w.namespace, w.name);
            let fail = |field: String, msg: String| Error::field(origin, &object, field, msg);
            if !is_dns_label(&w.name) {
                return Err(fail(
                    format!("workloads[{i}].name"),
                    format!("{:?} is not a DNS label", w.name),
                ));
            }
            if !is_dns_label(&w.namespace) {
                return Err(fail(
                    format!("workloads[{i}].namespace"),
                    format!("{:?} is not a DNS label", w.namespace),
                ));
            }
            if !seen.insert((w.namespace.clone(), w.name.clone())) {
                return Err(fail(format!("workloads[{i}]"), "is listed twice".into()));
            }
            check_labels(&w.pod_selector)
                .map_err(|m| fail(format!("workloads[{i}].podSelector"), m))?;
            for (dir, rules) in [("ingress", &w.ingress), ("egress", &w.egress)] {
                for (r, rule) in rules.iter().flatten().enumerate() {
                    let at = format!("workloads[{i}].{dir}[{r}]");
                    let (peers, wrong) = if dir == "ingress" {
                        (&rule.from, &rule.to)
                    } else {
                        (&rule.to, &rule.from)
                    };
                    if !wrong.is_empty() {
                        let (key, other) = if dir == "ingress" {
                            ("to", "from")
                        } else {
                            ("from", "to")
                        };
                        return Err(fail(
                            format!("{at}.{key}"),
                            format!("{dir} rules list their peers under `{other}`"),
                        ));
                    }
                    for (p, peer) in peers.iter().enumerate() {
                        let pf =
                            format!("{at}.{}[{p}]", if dir == "ingress" { "from" } else { "to" });
                        let kinds = [
                            peer.pods.is_some() || peer.namespaces.is_some(),
                            peer.cidr.is_some(),
                            peer.fqdn.is_some(),
                        ];
                        match kinds.iter().filter(|k| **k).count() {
                            0 => {
                                return Err(fail(
                                    pf,
                                    "a peer needs pods, namespaces, cidr or fqdn".into(),
                                ));
                            }
                            1 => {}
                            _ => {
                                return Err(fail(
                                    pf,
                                    "a peer is either selectors, a cidr or an fqdn, not several"
                                        .into(),
                                ));
                            }
                        }
                        for labels in [&peer.pods, &peer.namespaces].into_iter().flatten() {
                            check_labels(labels).map_err(|m| fail(pf.clone(), m))?;
                        }
                        if let Some(cidr) = &peer.cidr {
                            let net =
                                parse_cidr(cidr).map_err(|m| fail(format!("{pf}.cidr"), m))?;
                            for (e, ex) in peer.except.iter().enumerate() {
                                let inner = parse_cidr(ex)
                                    .map_err(|m| fail(format!("{pf}.except[{e}]"), m))?;
                                if !(net.contains(&inner) && inner.prefix_len() > net.prefix_len())
                                {
                                    return Err(fail(
                                        format!("{pf}.except[{e}]"),
                                        format!("{ex} is not inside {cidr}"),
                                    ));
                                }
                            }
                        } else if !peer.except.is_empty() {
                            return Err(fail(format!("{pf}.except"), "except needs a cidr".into()));
                        }
                        if let Some(fqdn) = &peer.fqdn {
                            if dir == "ingress" {
                                return Err(fail(
                                    format!("{pf}.fqdn"),
                                    "FQDN peers are for egress only".into(),
                                ));
                            }
                            if !is_fqdn_pattern(fqdn) {
                                return Err(fail(
                                    format!("{pf}.fqdn"),
                                    format!("{fqdn:?} is not a DNS name"),
                                ));
                            }
                        }
                    }
                    for (p, port) in rule.ports.iter().enumerate() {
                        let pf = format!("{at}.ports[{p}]");
                        if let Some(proto) = &port.protocol {
                            Protocol::parse(proto)
                                .map_err(|m| fail(format!("{pf}.protocol"), m))?;
                        }
                        match (&port.port, port.end_port) {
                            (PortValue::Number(0), _) => {
                                return Err(fail(format!("{pf}.port"), "must be 1-65535".into()));
                            }
                            (PortValue::Number(n), Some(end)) if end < *n => {
                                return Err(fail(
                                    format!("{pf}.endPort"),
                                    format!("endPort {end} is below port {n}"),
                                ));
                            }
                            (PortValue::Name(_), Some(_)) => {
                                return Err(fail(
                                    format!("{pf}.endPort"),
                                    "endPort needs a numeric port".into(),
                                ));
                            }
                            (PortValue::Name(name), None) => {
                                check_port_name(name).map_err(|m| fail(format!("{pf}.port"), m))?;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Namespaces of the workloads, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<_> =
            self.workloads.iter().map(|w| w.namespace.clone()).collect();
        set.into_iter().collect()
    }
}

fn check_labels(labels: &Labels) -> Result<(), String> {
    for (k, v) in labels {
        check_key(k)?;
        check_value(v)?;
    }
    Ok(())
}

/// An RFC 1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_fqdn_pattern(s: &str) -> bool {
    let body = s.strip_prefix("*.").unwrap_or(s);
    let body = body.strip_suffix('.').unwrap_or(body);
    body.len() <= 253
        && body.contains('.')
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}
