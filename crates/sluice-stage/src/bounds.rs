//! Project bounds: which sources a StageSet may fetch and what its stages may touch.

use globset::{Glob, GlobSet, GlobSetBuilder};
use sluice_api::Project;

use crate::order::{Prepared, Scope};
use crate::{Error, Result};

/// A Project's bounds, compiled. Empty lists allow nothing: a project opens doors explicitly.
#[derive(Debug)]
pub struct Bounds {
    project: String,
    sources: GlobSet,
    source_patterns: Vec<String>,
    namespaces: GlobSet,
    namespace_patterns: Vec<String>,
    cluster_kinds: Vec<(String, String)>,
}

fn globs(project: &str, field: &str, patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(Glob::new(p).map_err(|e| Error::Invalid {
            origin: format!("Project {project}"),
            message: format!("{field}: {e}"),
        })?);
    }
    builder.build().map_err(|e| Error::Invalid {
        origin: format!("Project {project}"),
        message: format!("{field}: {e}"),
    })
}

impl Bounds {
    /// Compiles a Project's globs.
    pub fn new(project: &Project) -> Result<Self> {
        let name = project.metadata.name.clone().unwrap_or_default();
        Ok(Self {
            sources: globs(&name, "spec.sourceUrls", &project.spec.source_urls)?,
            source_patterns: project.spec.source_urls.clone(),
            namespaces: globs(
                &name,
                "spec.destinationNamespaces",
                &project.spec.destination_namespaces,
            )?,
            namespace_patterns: project.spec.destination_namespaces.clone(),
            cluster_kinds: project
                .spec
                .cluster_scoped_kinds
                .iter()
                .map(|k| (k.group.clone(), k.kind.clone()))
                .collect(),
            project: name,
        })
    }

    /// Why fetching `url` is out of bounds, if it is.
    pub fn check_source(&self, url: &str) -> Option<String> {
        (!self.sources.is_match(url)).then(|| {
            format!(
                "source {} is outside project {}'s sourceUrls ({})",
                sluice_source::redact_url(url),
                self.project,
                list(&self.source_patterns)
            )
        })
    }

    /// Why applying `object` is out of bounds, if it is.
    pub fn check_object(&self, object: &Prepared) -> Option<String> {
        match object.scope {
            Scope::Namespaced => {
                let ns = object.namespace.as_deref().unwrap_or_default();
                (!self.namespaces.is_match(ns)).then(|| {
                    format!(
                        "{}: namespace {ns} is outside project {}'s destinationNamespaces ({})",
                        object.display(),
                        self.project,
                        list(&self.namespace_patterns)
                    )
                })
            }
            Scope::Cluster => {
                let kind_allowed = self.cluster_kinds.iter().any(|(g, k)| {
                    (g == "*" || *g == object.group) && (k == "*" || *k == object.kind)
                });
                if !kind_allowed {
                    return Some(format!(
                        "{}: cluster-scoped kind {} is not in project {}'s clusterScopedKinds",
                        object.display(),
                        if object.group.is_empty() {
                            object.kind.clone()
                        } else {
                            format!("{}.{}", object.kind, object.group)
                        },
                        self.project
                    ));
                }
                // A Namespace is also a destination: creating one outside the project's
                // namespaces would let it write there next.
                (object.group.is_empty()
                    && object.kind == "Namespace"
                    && !self.namespaces.is_match(&object.name))
                .then(|| {
                    format!(
                        "{}: namespace {} is outside project {}'s destinationNamespaces ({})",
                        object.display(),
                        object.name,
                        self.project,
                        list(&self.namespace_patterns)
                    )
                })
            }
        }
    }
}

fn list(patterns: &[String]) -> String {
    if patterns.is_empty() {
        "none".into()
    } else {
        patterns.join(", ")
    }
}
