//! `sluice netpol …`: thin wrappers over `sluice-netpol`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use sluice_netpol::report::{self, matrix_json, matrix_table};
use sluice_netpol::{Cluster, Evaluator, PolicySet, Protocol, Reachability};

/// `sluice netpol` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetpolCommand {
    /// Evaluate flows (probes) or the full reachability matrix for one port.
    Check(CheckArgs),
    /// Explain in prose why one flow is allowed or blocked, and what would change it.
    Explain(ExplainArgs),
    /// Generate least-privilege policies for the workloads of rendered manifests.
    Generate(GenerateArgs),
    /// Render a traffic model for one policy engine.
    Render(RenderArgs),
    /// Report the classic mistakes in policies (exit code 1 on findings at level error).
    Lint(LintArgs),
    /// List the flows a policy change would newly block and newly allow.
    Diff(DiffArgs),
    /// Write a realistic synthetic cluster (DIR/cluster.json) and policy set (DIR/policies/).
    Synth(SynthArgs),
}

/// A policy engine (always explicit: sluice never detects the CNI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// networking.k8s.io/v1 NetworkPolicy.
    Kubernetes,
    /// cilium.io/v2 CiliumNetworkPolicy.
    Cilium,
    /// projectcalico.org/v3 NetworkPolicy.
    Calico,
    /// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy.
    #[value(name = "clusterNetworkPolicy")]
    ClusterNetworkPolicy,
}

impl From<EngineArg> for sluice_netpol::render::Engine {
    fn from(e: EngineArg) -> Self {
        match e {
            EngineArg::Kubernetes => Self::Kubernetes,
            EngineArg::Cilium => Self::Cilium,
            EngineArg::Calico => Self::Calico,
            EngineArg::ClusterNetworkPolicy => Self::ClusterNetworkPolicy,
        }
    }
}

/// Layer options shared by `render` and `generate`.
#[derive(Debug, Args)]
pub struct LayerArgs {
    /// Policy engine.
    #[arg(long, value_enum, default_value = "kubernetes")]
    pub engine: EngineArg,
    /// Add the namespace-wide default-deny layer (ingress; egress too with --egress).
    #[arg(long)]
    pub default_deny: bool,
    /// Calico order / ClusterNetworkPolicy priority of the default-deny.
    #[arg(long)]
    pub default_deny_order: Option<u32>,
}

/// `sluice netpol generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Rendered manifests: files, directories, or - for stdin (e.g. piped from `sluice build`).
    #[arg(long = "manifests", short = 'f', num_args = 1.., required = true)]
    pub manifests: Vec<PathBuf>,
    /// Declared flows (see docs/netpol.md).
    #[arg(long)]
    pub traffic: Option<PathBuf>,
    /// Engine and layers.
    #[command(flatten)]
    pub layer: LayerArgs,
    /// Manage egress too: DNS, declared and inferred destinations, the apiserver by CIDR.
    #[arg(long)]
    pub egress: bool,
    /// The apiserver's endpoint CIDR (required with --egress when a workload talks to it).
    #[arg(long)]
    pub apiserver_cidr: Option<String>,
    /// Keep ports without a known client closed instead of open on that port.
    #[arg(long)]
    pub strict_ingress: bool,
    /// Do not infer flows from environment variables, args and ConfigMaps.
    #[arg(long)]
    pub no_infer: bool,
    /// Print why each rule is there (to stderr, so stdout stays YAML).
    #[arg(long)]
    pub explain: bool,
    /// Print the traffic model instead of rendered policies (edit it, then `netpol render`).
    #[arg(long)]
    pub emit_model: bool,
}

/// `sluice netpol render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The traffic model (YAML or JSON; see docs/netpol.md).
    #[arg(long = "model", short = 'f')]
    pub model: PathBuf,
    /// Engine and layers.
    #[command(flatten)]
    pub layer: LayerArgs,
    /// With --default-deny, deny egress too.
    #[arg(long)]
    pub deny_egress: bool,
}

/// `sluice netpol lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Policy files or directories; other kinds in them (workloads, Services) count as
    /// manifests. `-` reads stdin.
    pub paths: Vec<PathBuf>,
    /// More policy files or directories.
    #[arg(long, num_args = 1..)]
    pub policies: Vec<PathBuf>,
    /// Rendered manifests whose workloads stand for the pods (enables the pod-aware checks).
    #[arg(long = "manifests", short = 'f', num_args = 1..)]
    pub manifests: Vec<PathBuf>,
    /// A cluster snapshot (instead of manifests) for the pod-aware checks.
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// `sluice netpol diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Cluster snapshot.
    #[arg(long)]
    pub cluster: PathBuf,
    /// Policies before the change.
    #[arg(long, num_args = 1.., required = true)]
    pub before: Vec<PathBuf>,
    /// Policies after the change.
    #[arg(long, num_args = 1.., required = true)]
    pub after: Vec<PathBuf>,
    /// Only this port (default: every container port and every port the policies name).
    #[arg(long)]
    pub port: Option<u32>,
    /// Protocol of --port.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Exit with code 1 when the change blocks a flow that was allowed.
    #[arg(long)]
    pub fail_on_blocked: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// `sluice netpol synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Namespaces.
    #[arg(long, default_value_t = 100)]
    pub namespaces: usize,
    /// Pods in total.
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// NetworkPolicies in total (one default-deny per namespace first).
    #[arg(long, default_value_t = 1_000)]
    pub policies: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// Text for people, JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// JSON (stable contract).
    Json,
}

/// The cluster snapshot and the policies evaluated against it.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Cluster snapshot: {"namespaces": {...}, "pods": [...]}.
    #[arg(long)]
    pub cluster: PathBuf,
    /// NetworkPolicy files or directories (YAML or JSON, multi-document, List allowed).
    #[arg(long, num_args = 1..)]
    pub policies: Vec<PathBuf>,
}

/// `sluice netpol check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Snapshot.
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// Probes: [{"from": "ns/pod" | IP, "to": ..., "port": N, "protocol": "TCP"}].
    #[arg(long)]
    pub probes: Option<PathBuf>,
    /// Port of the reachability matrix (without --probes).
    #[arg(long, required_unless_present = "probes")]
    pub port: Option<u32>,
    /// Protocol of the reachability matrix.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Print only the counts over every ordered pair of distinct pods.
    #[arg(long, conflicts_with = "probes")]
    pub summary: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// `sluice netpol explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Snapshot.
    #[command(flatten)]
    pub snapshot: SnapshotArgs,
    /// Source: namespace/pod or an IP address.
    #[arg(long)]
    pub from: String,
    /// Destination: namespace/pod or an IP address.
    #[arg(long)]
    pub to: String,
    /// Destination port.
    #[arg(long)]
    pub port: u32,
    /// Protocol.
    #[arg(long, default_value = "TCP")]
    pub protocol: String,
    /// Output format (JSON is one `check` result).
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

/// Runs a `netpol` subcommand.
pub fn run(command: NetpolCommand) -> anyhow::Result<ExitCode> {
    match command {
        NetpolCommand::Check(args) => check(args),
        NetpolCommand::Explain(args) => explain(args),
        NetpolCommand::Generate(args) => generate(args),
        NetpolCommand::Render(args) => render(args),
        NetpolCommand::Lint(args) => lint(args),
        NetpolCommand::Diff(args) => diff(args),
        NetpolCommand::Synth(args) => synth(args),
    }
}

fn load(snapshot: &SnapshotArgs) -> anyhow::Result<(Cluster, PolicySet)> {
    let cluster = Cluster::load(&snapshot.cluster)?;
    let policies = PolicySet::load(&snapshot.policies, true)?;
    Ok((cluster, policies))
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")
}

fn json_line(value: &serde_json::Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (cluster, policies) = load(&args.snapshot)?;
    let eval = Evaluator::new(&cluster, &policies);
    if let Some(path) = &args.probes {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let probes = report::parse_probes(&text, &path.display().to_string(), &cluster)?;
        let results: Vec<_> = probes
            .iter()
            .map(|p| {
                let verdict = eval.evaluate(&p.flow);
                (p, verdict)
            })
            .collect();
        match args.output {
            Output::Json => json_line(&serde_json::Value::Array(
                results
                    .iter()
                    .map(|(p, v)| report::verdict_json(&cluster, &policies, &p.spec, &p.flow, v))
                    .collect(),
            ))?,
            Output::Text => {
                let mut text = String::new();
                for (p, v) in &results {
                    text.push_str(&format!(
                        "{:<8} {} -> {} {}/{}\n",
                        if v.allowed { "ALLOWED" } else { "BLOCKED" },
                        p.spec.from,
                        p.spec.to,
                        p.flow.protocol,
                        p.flow.port
                    ));
                }
                print(&text)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(port) = args.port else {
        bail!("--port is required without --probes");
    };
    let (port, protocol) = port_and_protocol(port, &args.protocol)?;
    let reach = Reachability::compute(&cluster, &policies, port, protocol);
    tracing::debug!(
        atoms = reach.atoms(),
        pods = cluster.pods.len(),
        "reachability computed"
    );
    let summary = reach.summary();
    match (args.summary, args.output) {
        // Exactly the documented shape, on one line.
        (true, Output::Json) => print(&format!(
            "{{\"pairs\": {}, \"allowed\": {}, \"denied\": {}}}\n",
            summary.pairs, summary.allowed, summary.denied
        ))?,
        (true, Output::Text) => print(&format!(
            "{} ordered pairs of distinct pods on {}/{}: {} allowed, {} blocked\n",
            summary.pairs, protocol, port, summary.allowed, summary.denied
        ))?,
        (false, Output::Json) => json_line(&matrix_json(&cluster, &reach, port, protocol))?,
        (false, Output::Text) => print(&matrix_table(&cluster, &reach, port, protocol))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let (cluster, policies) = load(&args.snapshot)?;
    let flow = report::resolve_flow(
        &cluster,
        &args.from,
        &args.to,
        args.port,
        Some(&args.protocol),
    )
    .map_err(anyhow::Error::msg)?;
    let verdict = Evaluator::new(&cluster, &policies).evaluate(&flow);
    match args.output {
        Output::Text => print(&report::explain_text(&cluster, &policies, &flow, &verdict))?,
        Output::Json => {
            let spec = report::ProbeSpec {
                from: args.from.clone(),
                to: args.to.clone(),
                port: args.port,
                protocol: Some(flow.protocol.as_str().to_owned()),
            };
            json_line(&report::verdict_json(
                &cluster, &policies, &spec, &flow, &verdict,
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Validates `--port` and `--protocol`.
fn port_and_protocol(port: u32, protocol: &str) -> anyhow::Result<(u16, Protocol)> {
    let protocol = Protocol::parse(protocol).map_err(anyhow::Error::msg)?;
    let port = u16::try_from(port)
        .ok()
        .filter(|&p| p > 0)
        .with_context(|| format!("--port {port} is not between 1 and 65535"))?;
    Ok((port, protocol))
}

fn synth(args: SynthArgs) -> anyhow::Result<ExitCode> {
    let spec = sluice_netpol::synth::SynthSpec {
        namespaces: args.namespaces,
        pods: args.pods,
        policies: args.policies,
        seed: args.seed,
    };
    let synthetic = sluice_netpol::synth::generate(&spec)?;
    sluice_netpol::synth::write(&synthetic, &args.out)?;
    eprintln!(
        "wrote {} pods in {} namespaces and {} policies to {}",
        synthetic.cluster.pods.len(),
        synthetic.cluster.namespaces.len(),
        synthetic.policies.values().map(Vec::len).sum::<usize>(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn lint(args: LintArgs) -> anyhow::Result<ExitCode> {
    use sluice_netpol::docs::{kind_of, read_documents};
    use sluice_netpol::lint::{Level, lint};
    use sluice_netpol::workload::Inventory;

    let mut paths = args.paths.clone();
    paths.extend(args.policies.iter().cloned());
    if paths.is_empty() {
        bail!("give policy files or directories to lint (or - for stdin)");
    }
    let docs = read_documents(&paths)?;
    let (policy_docs, other): (Vec<_>, Vec<_>) = docs
        .into_iter()
        .partition(|d| kind_of(&d.value).0 == "NetworkPolicy");
    let policies = PolicySet::from_documents(&policy_docs, false)?;
    let mut manifests = other;
    manifests.extend(read_documents(&args.manifests)?);
    let pods = match &args.cluster {
        Some(path) => Some(Cluster::load(path)?),
        None => {
            let inventory = Inventory::from_documents(&manifests)?;
            (!inventory.workloads.is_empty()).then(|| inventory.as_cluster())
        }
    };
    let findings = lint(&policies, pods.as_ref());
    match args.output {
        Output::Json => json_line(&serde_json::to_value(&findings)?)?,
        Output::Text => {
            let mut text = String::new();
            for f in &findings {
                let level = match f.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                    Level::Info => "info",
                };
                let field = f
                    .field
                    .as_deref()
                    .map(|x| format!(" {x}:"))
                    .unwrap_or_default();
                let file = if f.file.is_empty() {
                    "-"
                } else {
                    f.file.as_str()
                };
                text.push_str(&format!(
                    "{file}: {}:{field} {level}[{}]: {}\n",
                    f.policy, f.code, f.message
                ));
            }
            let count = |l| findings.iter().filter(|f| f.level == l).count();
            text.push_str(&format!(
                "{} policies: {} errors, {} warnings, {} notes{}\n",
                policies.policies.len(),
                count(Level::Error),
                count(Level::Warning),
                count(Level::Info),
                if pods.is_none() {
                    " (no pods given: pod-aware checks skipped)"
                } else {
                    ""
                }
            ));
            print(&text)?;
        }
    }
    Ok(if findings.iter().any(|f| f.level == Level::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    use sluice_netpol::diff::{diff, ports_of_interest};

    let cluster = Cluster::load(&args.cluster)?;
    let before = PolicySet::load(&args.before, true)?;
    let after = PolicySet::load(&args.after, true)?;
    let ports = match args.port {
        Some(port) => vec![port_and_protocol(port, &args.protocol)?],
        None => ports_of_interest(&cluster, &[&before, &after]),
    };
    let result = diff(&cluster, &before, &after, &ports);
    match args.output {
        Output::Json => json_line(&serde_json::to_value(&result)?)?,
        Output::Text => {
            let mut text = format!(
                "Ports examined: {}\n",
                if result.ports.is_empty() {
                    "none (no container ports and no policy ports; use --port)".into()
                } else {
                    result.ports.join(", ")
                }
            );
            for (title, list) in [
                ("Newly BLOCKED", &result.newly_blocked),
                ("Newly ALLOWED", &result.newly_allowed),
            ] {
                text.push_str(&format!("\n{title} ({}):\n", list.len()));
                if list.is_empty() {
                    text.push_str("  none\n");
                }
                for f in list {
                    text.push_str(&format!(
                        "  {} -> {} {}/{}\n",
                        f.from, f.to, f.protocol, f.port
                    ));
                }
            }
            print(&text)?;
        }
    }
    Ok(
        if args.fail_on_blocked && !result.newly_blocked.is_empty() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn apply_layers(
    model: &mut sluice_netpol::model::TrafficModel,
    layer: &LayerArgs,
    deny_egress: bool,
) {
    if layer.default_deny {
        model.default_deny.enabled = true;
    }
    if deny_egress {
        model.default_deny.egress = true;
    }
    if let Some(order) = layer.default_deny_order {
        model.default_deny.order = order;
    }
}

fn render(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let mut model =
        sluice_netpol::model::TrafficModel::from_text(&text, &args.model.display().to_string())?;
    apply_layers(&mut model, &args.layer, args.deny_egress);
    print(&sluice_netpol::render::render_yaml(
        &model,
        args.layer.engine.into(),
    )?)?;
    Ok(ExitCode::SUCCESS)
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    use sluice_netpol::generate::{GenerateOptions, TrafficFile, generate};
    use sluice_netpol::workload::Inventory;

    if let Some(cidr) = &args.apiserver_cidr {
        sluice_netpol::cidr::parse_cidr(cidr)
            .map_err(|m| anyhow::anyhow!("--apiserver-cidr: {m}"))?;
    }
    let docs = sluice_netpol::docs::read_documents(&args.manifests)?;
    let inventory = Inventory::from_documents(&docs)?;
    let traffic = match &args.traffic {
        None => TrafficFile::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let values =
                sluice_manifest::parse_documents(&text, &sluice_manifest::YamlLimits::default())
                    .with_context(|| format!("{}", path.display()))?;
            match values.as_slice() {
                [] => TrafficFile::default(),
                [one] => serde_path_to_error::deserialize(one.clone()).map_err(|e| {
                    anyhow::anyhow!("{}: {}: {}", path.display(), e.path(), e.inner())
                })?,
                _ => bail!("{}: expected one document", path.display()),
            }
        }
    };
    let options = GenerateOptions {
        egress: args.egress,
        apiserver_cidr: args.apiserver_cidr.clone(),
        strict_ingress: args.strict_ingress,
        infer: !args.no_infer,
    };
    let mut generated = generate(&inventory, &traffic, &options)?;
    apply_layers(&mut generated.model, &args.layer, args.egress);
    if args.explain {
        let mut text = String::new();
        for e in &generated.explanations {
            text.push_str(&format!("{}:\n", e.workload));
            for line in &e.lines {
                text.push_str(&format!("  - {line}\n"));
            }
        }
        if generated.model.default_deny.enabled {
            text.push_str(&format!(
                "default-deny for {} in {}\n",
                if generated.model.default_deny.egress {
                    "ingress and egress"
                } else {
                    "ingress"
                },
                generated.model.namespaces().join(", ")
            ));
        }
        eprint!("{text}");
    }
    if args.emit_model {
        print(&sluice_manifest::to_yaml_document(&serde_json::to_value(
            &generated.model,
        )?))?;
    } else {
        print(&sluice_netpol::render::render_yaml(
            &generated.model,
            args.layer.engine.into(),
        )?)?;
    }
    Ok(ExitCode::SUCCESS)
}
