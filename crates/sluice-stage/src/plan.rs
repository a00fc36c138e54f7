//! The offline plan: every stage's source resolved and pinned first, then each stage rendered
//! in order, checked against its Project, and its objects listed in apply order.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sluice_api::{SourceKind, Stage, StageSet};
use sluice_render::{EngineChoice, RenderRequest, ToolPaths};
use sluice_source::{FetchOptions, SourceSpec, fetch, read_flux_source, redact_url};

use crate::bounds::Bounds;
use crate::load::Bundle;
use crate::order::{Prepared, Scopes, prepare};

/// Where sources come from when there is no cluster.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Source cache.
    pub cache_dir: PathBuf,
    /// Flux source objects (one per file) and local stand-ins for them
    /// (`<kind>/<namespace>/<name>/` directories, kind in lower case).
    pub sources_dir: Option<PathBuf>,
    /// Relative local Git paths in inline sources are resolved against this directory (the
    /// StageSet file's).
    pub base_dir: PathBuf,
    /// External tools.
    pub tools: ToolPaths,
    /// How external tools are confined (the same policy `sluice build` uses).
    pub sandbox: sluice_sandbox::SandboxPolicy,
}

/// The plan of one StageSet.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// `namespace/name`.
    pub stageset: String,
    /// The Project bounding it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The ServiceAccount every operation would impersonate.
    #[serde(rename = "serviceAccountName")]
    pub service_account_name: String,
    /// Problems that stop the whole StageSet (a missing Project, a dependency).
    pub problems: Vec<String>,
    /// The stages in rollout order.
    pub stages: Vec<StagePlan>,
}

impl Plan {
    /// Whether anything would fail.
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty() || self.stages.iter().any(|s| !s.problems.is_empty())
    }
}

/// One stage of the plan.
#[derive(Debug, Serialize)]
pub struct StagePlan {
    /// Stage name.
    pub name: String,
    /// Where its manifests come from (credentials redacted).
    pub source: String,
    /// The revision pinned at the start of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The engine that rendered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Whether objects that leave the stage are pruned.
    pub prune: bool,
    /// Its objects, in apply order.
    pub objects: Vec<Prepared>,
    /// What would fail.
    pub problems: Vec<String>,
}

/// A stage's source, resolved but not yet fetched.
struct Resolved {
    spec: SourceSpec,
    shown: String,
    /// The URL the Project's sourceUrls must allow (`None` for local stand-ins).
    url: Option<String>,
}

/// A stage's source, resolved and pinned.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// The source at exactly the pinned revision.
    pub spec: SourceSpec,
    /// The pinned revision (`main@sha1:…`, `sha256:…`, `local@sha256:…`).
    pub revision: String,
    /// Where it comes from, credentials redacted.
    pub shown: String,
    /// The URL a Project's sourceUrls must allow (`None` for local stand-ins).
    pub url: Option<String>,
}

/// Resolves a stage's source and pins it to what is there now.
pub fn pin_stage(stage: &Stage, namespace: &str, options: &PlanOptions) -> Result<Pinned, String> {
    let resolved = resolve(stage, namespace, options)?;
    let fetched =
        fetch(&resolved.spec, &FetchOptions::new(&options.cache_dir)).map_err(|e| e.to_string())?;
    let revision = match &resolved.spec {
        SourceSpec::Local(dir) => tree_digest(dir)
            .map(|d| format!("local@sha256:{d}"))
            .unwrap_or_else(|_| fetched.revision.clone()),
        _ => fetched.revision.clone(),
    };
    Ok(Pinned {
        spec: pin_spec(resolved.spec, &fetched.revision),
        revision,
        shown: resolved.shown,
        url: resolved.url,
    })
}

/// The source of a stage at a revision pinned earlier (a run resumed after a restart renders
/// exactly what it pinned, even if the branch has moved since).
pub fn spec_at(
    stage: &Stage,
    namespace: &str,
    options: &PlanOptions,
    revision: &str,
) -> Result<SourceSpec, String> {
    Ok(pin_spec(resolve(stage, namespace, options)?.spec, revision))
}

/// Renders a stage from its pinned source; returns the objects and the engine's name.
pub fn render_stage(
    stage: &Stage,
    pinned: &SourceSpec,
    options: &PlanOptions,
    release_name: &str,
    namespace: &str,
) -> Result<(Vec<serde_json::Value>, &'static str), String> {
    let mut request = RenderRequest::new(pinned.clone(), &options.cache_dir);
    request.path = PathBuf::from(stage.path.clone().unwrap_or_default());
    request.tools = options.tools.clone();
    request.sandbox = options.sandbox.clone();
    request.helm.release_name = release_name.to_owned();
    request.helm.namespace = namespace.to_owned();
    if let Some(engine) = stage.engine {
        request.engine = EngineChoice::Fixed(render_engine(engine));
    }
    let rendered = sluice_render::render(&request).map_err(|e| e.to_string())?;
    Ok((rendered.objects, rendered.engine.name()))
}

/// Plans `stageset`: pins every stage's source first, then renders stage by stage.
pub fn plan(stageset: &StageSet, bundle: &Bundle, options: &PlanOptions) -> Plan {
    let namespace = stageset
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = stageset.metadata.name.clone().unwrap_or_default();
    let spec = &stageset.spec;
    let mut result = Plan {
        stageset: format!("{namespace}/{name}"),
        project: spec.project.clone(),
        service_account_name: spec.service_account_name.clone(),
        problems: Vec::new(),
        stages: Vec::new(),
    };
    let bounds = match &spec.project {
        None => None,
        Some(project) => match bundle.project(project).map(Bounds::new) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                result.problems.push(format!("ProjectViolation: {e}"));
                None
            }
            None => {
                result.problems.push(format!(
                    "ProjectViolation: Project {project} is not defined (give it in the StageSet file or --sources)"
                ));
                None
            }
        },
    };
    for dep in &spec.depends_on {
        let dep_ns = dep.namespace.as_deref().unwrap_or(&namespace);
        let known = bundle.stagesets.iter().any(|(_, s)| {
            s.metadata.name.as_deref() == Some(dep.name.as_str())
                && s.metadata.namespace.as_deref().unwrap_or("default") == dep_ns
        });
        if !known {
            result.problems.push(format!(
                "DependencyNotReady: dependsOn {dep_ns}/{} is not in this plan; the controller waits for it to be Ready",
                dep.name
            ));
        }
    }

    // 1. Resolve and pin every source before anything renders: a commit that lands mid-run
    // belongs to the next run.
    let mut pinned = Vec::new();
    for stage in &spec.stages {
        let mut stage_plan = StagePlan {
            name: stage.name.clone(),
            source: String::new(),
            revision: None,
            engine: None,
            prune: stage.prune,
            objects: Vec::new(),
            problems: Vec::new(),
        };
        let pin = match pin_stage(stage, &namespace, options) {
            Err(message) => {
                stage_plan.source = describe_unresolved(stage);
                stage_plan
                    .problems
                    .push(format!("SourceNotReady: {message}"));
                None
            }
            Ok(pinned) => {
                stage_plan.source = pinned.shown.clone();
                stage_plan.revision = Some(pinned.revision.clone());
                if let (Some(b), Some(url)) = (&bounds, &pinned.url)
                    && let Some(why) = b.check_source(url)
                {
                    stage_plan.problems.push(format!("ProjectViolation: {why}"));
                }
                Some(pinned.spec)
            }
        };
        pinned.push(pin);
        result.stages.push(stage_plan);
    }

    // 2. Render in order, from the pinned revisions only.
    let default_namespace = spec.target_namespace.clone().unwrap_or(namespace);
    let mut scopes = Scopes::default();
    for ((stage, stage_plan), pin) in spec.stages.iter().zip(&mut result.stages).zip(pinned) {
        let Some(source) = pin else { continue };
        let (objects, engine) =
            match render_stage(stage, &source, options, &name, &default_namespace) {
                Ok(r) => r,
                Err(e) => {
                    stage_plan.problems.push(format!("RenderFailed: {e}"));
                    continue;
                }
            };
        stage_plan.engine = Some(engine.to_owned());
        match prepare(&objects, &mut scopes, &default_namespace) {
            Err(e) => stage_plan.problems.push(format!("RenderFailed: {e}")),
            Ok(objects) => {
                if let Some(b) = &bounds {
                    for o in &objects {
                        if let Some(why) = b.check_object(o) {
                            stage_plan.problems.push(format!("ProjectViolation: {why}"));
                        }
                    }
                }
                stage_plan.objects = objects;
            }
        }
    }
    result
}

fn render_engine(engine: sluice_api::Engine) -> sluice_render::Engine {
    match engine {
        sluice_api::Engine::Plain => sluice_render::Engine::Plain,
        sluice_api::Engine::Kustomize => sluice_render::Engine::Kustomize,
        sluice_api::Engine::Helm => sluice_render::Engine::Helm,
        sluice_api::Engine::Jsonnet => sluice_render::Engine::Jsonnet,
    }
}

fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::GitRepository => "GitRepository",
        SourceKind::OciRepository => "OCIRepository",
        SourceKind::Bucket => "Bucket",
        SourceKind::ExternalArtifact => "ExternalArtifact",
    }
}

fn describe_unresolved(stage: &Stage) -> String {
    match (&stage.source_ref, &stage.source) {
        (Some(r), _) => format!(
            "{} {}/{}",
            kind_name(r.kind),
            r.namespace.as_deref().unwrap_or("-"),
            r.name
        ),
        (_, Some(s)) => s
            .git
            .as_ref()
            .map(|g| redact_url(&g.url))
            .or_else(|| s.http.as_ref().map(|h| redact_url(&h.url)))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// A fetched source pinned to what was fetched: Git by commit SHA; artifacts and local trees
/// are content-addressed already.
fn pin_spec(spec: SourceSpec, revision: &str) -> SourceSpec {
    match spec {
        SourceSpec::Git { url, .. } => match revision.rsplit_once("sha1:") {
            Some((_, sha)) => SourceSpec::Git {
                url,
                reference: Some(sha.to_owned()),
            },
            None => SourceSpec::Git {
                url,
                reference: None,
            },
        },
        other => other,
    }
}

fn resolve(stage: &Stage, namespace: &str, options: &PlanOptions) -> Result<Resolved, String> {
    if let Some(inline) = &stage.source {
        if let Some(git) = &inline.git {
            let url = local_or_url(&git.url, &options.base_dir);
            return Ok(Resolved {
                shown: format!(
                    "git {}{}",
                    redact_url(&git.url),
                    git.reference
                        .as_deref()
                        .map(|r| format!(" @ {r}"))
                        .unwrap_or_default()
                ),
                spec: SourceSpec::Git {
                    url,
                    reference: git.reference.clone(),
                },
                url: Some(git.url.clone()),
            });
        }
        if let Some(http) = &inline.http {
            let digest = http.digest.parse().map_err(|e| format!("{e}"))?;
            return Ok(Resolved {
                shown: format!("http {}", redact_url(&http.url)),
                spec: SourceSpec::Artifact {
                    url: http.url.clone(),
                    digest,
                    revision: None,
                },
                url: Some(http.url.clone()),
            });
        }
    }
    let Some(reference) = &stage.source_ref else {
        return Err("the stage has no source".into());
    };
    let kind = kind_name(reference.kind);
    let ns = reference.namespace.as_deref().unwrap_or(namespace);
    let shown = format!("{kind} {ns}/{}", reference.name);
    let Some(dir) = &options.sources_dir else {
        return Err(format!(
            "{shown} lives in the cluster: pass --sources DIR with the object as a file (or a {}/{ns}/{} directory standing in for its artifact)",
            kind.to_ascii_lowercase(),
            reference.name
        ));
    };
    let stand_in = dir
        .join(kind.to_ascii_lowercase())
        .join(ns)
        .join(&reference.name);
    if stand_in.is_dir() {
        return Ok(Resolved {
            shown: format!("{shown} (local {})", stand_in.display()),
            spec: SourceSpec::Local(stand_in),
            url: None,
        });
    }
    for file in yaml_files(dir) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(docs) = sluice_manifest::parse_documents(&text, &Default::default()) else {
            continue;
        };
        let matches = docs.iter().any(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == reference.name.as_str()
                && d["metadata"]["namespace"].as_str().unwrap_or("default") == ns
        });
        if matches {
            let url = docs
                .iter()
                .find_map(|d| d["spec"]["url"].as_str().map(str::to_owned));
            let spec = read_flux_source(&file).map_err(|e| e.to_string())?;
            return Ok(Resolved {
                shown: format!("{shown} ({})", file.display()),
                spec,
                url,
            });
        }
    }
    Err(format!("{shown} is not in {}", dir.display()))
}

/// A relative path that exists locally is taken relative to the StageSet file.
fn local_or_url(url: &str, base: &Path) -> String {
    let looks_remote = url.contains("://") || (url.contains('@') && url.contains(':'));
    if looks_remote || Path::new(url).is_absolute() {
        return url.to_owned();
    }
    base.join(url).display().to_string()
}

/// The YAML and JSON files below `dir`, in path order.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    out.sort();
    out
}

/// A content digest of a local tree: every regular file's relative path and bytes, in path
/// order, so the same tree always pins to the same revision.
pub fn tree_digest(dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        let relative = file.strip_prefix(dir).unwrap_or(&file);
        hash.update(relative.to_string_lossy().as_bytes());
        hash.update([0]);
        let bytes = std::fs::read(&file)?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hex::encode(hash.finalize()))
}
