//! `networking.k8s.io/v1` NetworkPolicy: the written form, validation, and the compiled form.

use std::fmt;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use crate::cidr::parse_cidr;
use crate::docs::Document;
use crate::error::{Error, Result};
use crate::labels::{LabelSelectorSpec, Selector};

/// A transport protocol NetworkPolicy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses the API spelling (`TCP`, `UDP`, `SCTP`; case-sensitive like the API server).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "TCP" => Ok(Self::Tcp),
            "UDP" => Ok(Self::Udp),
            "SCTP" => Ok(Self::Sctp),
            other => Err(format!(
                "unsupported protocol {other:?} (expected TCP, UDP or SCTP)"
            )),
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled NetworkPolicy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Where it was read from (`file` or `file#document`).
    pub origin: String,
    /// `spec.podSelector` (within `namespace`).
    pub pod_selector: Selector,
    /// Ingress rules when the policy applies to ingress (after `policyTypes` inference).
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules when the policy applies to egress.
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The rules of one direction, if the policy applies to it.
    pub fn rules(&self, direction: Direction) -> Option<&[Rule]> {
        match direction {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }
}

/// Traffic direction, seen from the pod a policy selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Traffic into the selected pod.
    Ingress,
    /// Traffic out of the selected pod.
    Egress,
}

impl Direction {
    /// `ingress` / `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// One ingress or egress rule.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Peers (`from` / `to`); empty means every source or destination.
    pub peers: Vec<Peer>,
    /// Ports; empty means every port and protocol.
    pub ports: Vec<PortRule>,
}

/// A peer of a rule.
#[derive(Debug, Clone)]
pub enum Peer {
    /// Pods picked by selectors.
    Pods {
        /// `namespaceSelector`; `None` means the policy's own namespace.
        namespaces: Option<Selector>,
        /// `podSelector`; `None` means every pod of the selected namespaces.
        pods: Option<Selector>,
    },
    /// An address range (pod IPs included).
    IpBlock {
        /// The range.
        cidr: IpNet,
        /// Ranges carved out of it.
        except: Vec<IpNet>,
    },
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// Protocol (default TCP).
    pub protocol: Protocol,
    /// Which ports.
    pub port: PortSel,
}

/// Which ports a port rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSel {
    /// Every port of the protocol (`port` omitted).
    Any,
    /// `port` ..= `endPort` (equal bounds for a single port).
    Range(u16, u16),
    /// A named container port, resolved on the destination pod.
    Named(String),
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            PortSel::Any => write!(f, "{}/*", self.protocol),
            PortSel::Range(a, b) if a == b => write!(f, "{}/{a}", self.protocol),
            PortSel::Range(a, b) => write!(f, "{}/{a}-{b}", self.protocol),
            PortSel::Named(n) => write!(f, "{}/{n}", self.protocol),
        }
    }
}

/// A problem the API server would reject but lint reports instead of stopping.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpecDoc {
    #[serde(default)]
    pod_selector: Option<LabelSelectorSpec>,
    #[serde(default)]
    policy_types: Option<Vec<String>>,
    #[serde(default)]
    ingress: Option<Vec<IngressDoc>>,
    #[serde(default)]
    egress: Option<Vec<EgressDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngressDoc {
    #[serde(default)]
    from: Option<Vec<PeerDoc>>,
    #[serde(default)]
    ports: Option<Vec<PortDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EgressDoc {
    #[serde(default)]
    to: Option<Vec<PeerDoc>>,
    #[serde(default)]
    ports: Option<Vec<PortDoc>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PeerDoc {
    #[serde(default)]
    pod_selector: Option<LabelSelectorSpec>,
    #[serde(default)]
    namespace_selector: Option<LabelSelectorSpec>,
    #[serde(default)]
    ip_block: Option<IpBlockDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IpBlockDoc {
    cidr: String,
    #[serde(default)]
    except: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PortDoc {
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    port: Option<IntOrString>,
    #[serde(default)]
    end_port: Option<i64>,
}

#[derive(Debug)]
enum IntOrString {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IntOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a port name")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrString, E> {
                Ok(IntOrString::Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::Str(v.to_owned()))
            }
        }
        de.deserialize_any(Visitor)
    }
}

/// Reads one NetworkPolicy document. With `strict`, anything the API server would reject is an
/// error; otherwise such problems are returned for lint to report.
pub fn compile(doc: &Document, strict: bool) -> Result<(Policy, Vec<Problem>)> {
    let value = &doc.value;
    let metadata = value.get("metadata").and_then(Value::as_object);
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::field(
                &doc.origin,
                &format!("NetworkPolicy (document {})", doc.index),
                "metadata.name",
                "is required",
            )
        })?;
    // kubectl puts an object without a namespace into the context's namespace: `default`.
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let object = format!("NetworkPolicy {namespace}/{name}");
    let spec_value = value.get("spec").cloned().unwrap_or(Value::Null);
    let spec_value = if spec_value.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        spec_value
    };
    let spec: SpecDoc = serde_path_to_error::deserialize(spec_value).map_err(|e| {
        let path = e.path().to_string();
        Error::field(
            &doc.origin,
            &object,
            if path == "." {
                "spec".to_owned()
            } else {
                format!("spec.{path}")
            },
            e.into_inner().to_string(),
        )
    })?;
    let mut ctx = Ctx {
        origin: &doc.origin,
        object: &object,
        strict,
        problems: Vec::new(),
    };
    let pod_selector = ctx.selector(
        spec.pod_selector
            .as_ref()
            .unwrap_or(&LabelSelectorSpec::default()),
        "spec.podSelector",
    )?;
    let (mut has_ingress, mut has_egress) = (false, false);
    match &spec.policy_types {
        Some(types) if !types.is_empty() => {
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    "Ingress" => has_ingress = true,
                    "Egress" => has_egress = true,
                    other => {
                        return Err(Error::field(
                            &doc.origin,
                            &object,
                            format!("spec.policyTypes[{i}]"),
                            format!("unknown policy type {other:?} (expected Ingress or Egress)"),
                        ));
                    }
                }
            }
        }
        // Upstream defaulting: Ingress always; Egress only when egress rules are present.
        _ => {
            has_ingress = true;
            has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        }
    }
    let mut ingress = Vec::new();
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let field = format!("spec.ingress[{i}]");
        ingress.push(ctx.rule(rule.from.as_deref(), rule.ports.as_deref(), &field, "from")?);
    }
    let mut egress = Vec::new();
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let field = format!("spec.egress[{i}]");
        egress.push(ctx.rule(rule.to.as_deref(), rule.ports.as_deref(), &field, "to")?);
    }
    let policy = Policy {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        origin: doc.origin.clone(),
        pod_selector,
        ingress: has_ingress.then_some(ingress),
        egress: has_egress.then_some(egress),
    };
    Ok((policy, ctx.problems))
}

struct Ctx<'a> {
    origin: &'a str,
    object: &'a str,
    strict: bool,
    problems: Vec<Problem>,
}

impl Ctx<'_> {
    fn fail(&self, field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::field(self.origin, self.object, field, message)
    }

    /// Records a problem the API server would reject: an error when strict.
    fn problem(&mut self, field: String, message: String) -> Result<()> {
        if self.strict {
            return Err(self.fail(field, message));
        }
        self.problems.push(Problem { field, message });
        Ok(())
    }

    fn selector(&self, spec: &LabelSelectorSpec, field: &str) -> Result<Selector> {
        Selector::compile(spec).map_err(|(f, m)| self.fail(format!("{field}.{f}"), m))
    }

    fn rule(
        &mut self,
        peers: Option<&[PeerDoc]>,
        ports: Option<&[PortDoc]>,
        field: &str,
        peer_field: &str,
    ) -> Result<Rule> {
        let mut rule = Rule::default();
        for (i, peer) in peers.unwrap_or_default().iter().enumerate() {
            let pf = format!("{field}.{peer_field}[{i}]");
            rule.peers.push(self.peer(peer, &pf)?);
        }
        for (i, port) in ports.unwrap_or_default().iter().enumerate() {
            let pf = format!("{field}.ports[{i}]");
            rule.ports.push(self.port(port, &pf)?);
        }
        Ok(rule)
    }

    fn peer(&mut self, peer: &PeerDoc, field: &str) -> Result<Peer> {
        if let Some(block) = &peer.ip_block {
            if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                return Err(self.fail(
                    field,
                    "ipBlock cannot be combined with podSelector or namespaceSelector in one peer",
                ));
            }
            let cidr = parse_cidr(&block.cidr)
                .map_err(|m| self.fail(format!("{field}.ipBlock.cidr"), m))?;
            let mut except = Vec::new();
            for (i, text) in block.except.iter().flatten().enumerate() {
                let ef = format!("{field}.ipBlock.except[{i}]");
                let net = parse_cidr(text).map_err(|m| self.fail(ef.clone(), m))?;
                if !(cidr.contains(&net) && net.prefix_len() > cidr.prefix_len()) {
                    self.problem(
                        ef,
                        format!("{text} is not a strict subset of the ipBlock cidr {cidr}"),
                    )?;
                }
                except.push(net);
            }
            return Ok(Peer::IpBlock { cidr, except });
        }
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            return Err(self.fail(
                field,
                "a peer must set podSelector, namespaceSelector or ipBlock",
            ));
        }
        let namespaces = peer
            .namespace_selector
            .as_ref()
            .map(|s| self.selector(s, &format!("{field}.namespaceSelector")))
            .transpose()?;
        let pods = peer
            .pod_selector
            .as_ref()
            .map(|s| self.selector(s, &format!("{field}.podSelector")))
            .transpose()?;
        Ok(Peer::Pods { namespaces, pods })
    }

    fn port(&mut self, port: &PortDoc, field: &str) -> Result<PortRule> {
        let protocol = match port.protocol.as_deref() {
            None => Protocol::Tcp,
            Some(p) => Protocol::parse(p).map_err(|m| self.fail(format!("{field}.protocol"), m))?,
        };
        let number = |n: i64, f: String, this: &Self| {
            u16::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| this.fail(f, format!("{n} is not a port between 1 and 65535")))
        };
        let sel = match &port.port {
            None => {
                if port.end_port.is_some() {
                    self.problem(
                        format!("{field}.endPort"),
                        "endPort needs a numeric port".into(),
                    )?;
                }
                PortSel::Any
            }
            Some(IntOrString::Int(n)) => {
                let start = number(*n, format!("{field}.port"), self)?;
                match port.end_port {
                    None => PortSel::Range(start, start),
                    Some(end) => {
                        let end = number(end, format!("{field}.endPort"), self)?;
                        if end < start {
                            self.problem(
                                format!("{field}.endPort"),
                                format!("endPort {end} is below port {start}"),
                            )?;
                            PortSel::Range(start, start)
                        } else {
                            PortSel::Range(start, end)
                        }
                    }
                }
            }
            Some(IntOrString::Str(name)) => {
                check_port_name(name).map_err(|m| self.fail(format!("{field}.port"), m))?;
                if port.end_port.is_some() {
                    self.problem(
                        format!("{field}.endPort"),
                        "endPort needs a numeric port, not a named one".into(),
                    )?;
                }
                PortSel::Named(name.clone())
            }
        };
        Ok(PortRule {
            protocol,
            port: sel,
        })
    }
}

/// Checks an IANA service name (what a named port must be).
pub fn check_port_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 15
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid port name (1-15 lower-case letters, digits and '-', at least one letter)"
        ))
    }
}
