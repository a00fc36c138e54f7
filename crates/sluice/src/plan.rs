//! `sluice plan`: what a StageSet would do, without a cluster.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use sluice_stage::load::Bundle;
use sluice_stage::plan::{Plan, PlanOptions, plan};

/// `sluice plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A YAML file with one or more StageSets (and the Projects they name).
    pub stageset: PathBuf,
    /// Flux source objects (one per file) and Projects; `<kind>/<namespace>/<name>/`
    /// directories stand in for a source's artifact.
    #[arg(long)]
    pub sources: Option<PathBuf>,
    /// Source cache (default: $XDG_CACHE_HOME/sluice or ~/.cache/sluice).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Tool locations and the sandbox (as for `sluice build`).
    #[command(flatten)]
    pub tools: crate::cli::ToolArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: PlanOutput,
}

/// Text for people, JSON for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    /// The ordered plan, readable.
    Text,
    /// An array of plans.
    Json,
}

/// Runs `sluice plan`: exit 0 when every stage would succeed, 1 otherwise.
pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let mut bundle = Bundle::read(&args.stageset)?;
    if let Some(dir) = &args.sources {
        anyhow::ensure!(dir.is_dir(), "--sources {}: not a directory", dir.display());
        for file in sluice_stage::plan::yaml_files(dir) {
            bundle.add_file(&file, true).with_context(|| "--sources")?;
        }
    }
    anyhow::ensure!(
        !bundle.stagesets.is_empty(),
        "{}: no sluice.dev/v1alpha1 StageSet in it",
        args.stageset.display()
    );
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => crate::build::default_cache_dir()?,
    };
    let options = PlanOptions {
        cache_dir,
        sources_dir: args.sources.clone(),
        base_dir: args
            .stageset
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        tools: crate::build::tool_paths(&args.tools),
        sandbox: crate::build::sandbox_policy(&args.tools),
    };
    let from_file: Vec<_> = bundle
        .stagesets
        .iter()
        .filter(|(origin, _)| origin == &args.stageset)
        .map(|(_, s)| s)
        .collect();
    let plans: Vec<Plan> = from_file
        .iter()
        .map(|s| plan(s, &bundle, &options))
        .collect();
    let mut out = std::io::stdout().lock();
    match args.output {
        PlanOutput::Json => writeln!(out, "{}", serde_json::to_string_pretty(&plans)?)?,
        PlanOutput::Text => {
            for p in &plans {
                write!(out, "{}", text(p))?;
            }
        }
    }
    out.flush()?;
    Ok(if plans.iter().any(Plan::has_problems) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn text(p: &Plan) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "StageSet {} (project {}, as ServiceAccount {})",
        p.stageset,
        p.project.as_deref().unwrap_or("none"),
        p.service_account_name
    );
    for problem in &p.problems {
        let _ = writeln!(s, "  ! {problem}");
    }
    let _ = writeln!(s, "\nPinned revisions:");
    let width = p.stages.iter().map(|st| st.name.len()).max().unwrap_or(0);
    for st in &p.stages {
        let _ = writeln!(
            s,
            "  {:width$}  {}  ({})",
            st.name,
            st.revision.as_deref().unwrap_or("unresolved"),
            st.source
        );
    }
    let total = p.stages.len();
    for (i, st) in p.stages.iter().enumerate() {
        let _ = writeln!(
            s,
            "\nStage {}/{total} {}: {} objects{}{}",
            i + 1,
            st.name,
            st.objects.len(),
            st.engine
                .as_deref()
                .map(|e| format!(", engine {e}"))
                .unwrap_or_default(),
            if st.prune { "" } else { ", prune off" }
        );
        let kind_width = st.objects.iter().map(|o| o.kind.len()).max().unwrap_or(0);
        for o in &st.objects {
            let _ = writeln!(
                s,
                "  {:kind_width$}  {}",
                o.kind,
                match &o.namespace {
                    Some(ns) => format!("{ns}/{}", o.name),
                    None => o.name.clone(),
                }
            );
        }
        for problem in &st.problems {
            let _ = writeln!(s, "  ! {problem}");
        }
    }
    let objects: usize = p.stages.iter().map(|st| st.objects.len()).sum();
    let problems = p.problems.len() + p.stages.iter().map(|st| st.problems.len()).sum::<usize>();
    let _ = writeln!(
        s,
        "\n{total} stages, {objects} objects: {}",
        if problems == 0 {
            "every stage would apply".to_owned()
        } else {
            format!("{problems} problem(s); the controller stops at the first failing stage")
        }
    );
    s
}
