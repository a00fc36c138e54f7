//! Reading StageSets and Projects from YAML files, with the checks the API server's schema
//! cannot express (unique stage names, exactly one source per stage).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_api::{Project, Stage, StageSet};
use sluice_manifest::{YamlLimits, parse_documents};

use crate::{Error, Result};

const API_VERSION: &str = "sluice.dev/v1alpha1";

/// The StageSets and Projects of some files.
#[derive(Debug, Default)]
pub struct Bundle {
    /// StageSets with the file they came from.
    pub stagesets: Vec<(PathBuf, StageSet)>,
    /// Projects with the file they came from.
    pub projects: Vec<(PathBuf, Project)>,
}

impl Bundle {
    /// Reads every document of `path`. Unknown kinds are errors: a typo in `kind` must not
    /// make an object silently disappear from the plan.
    pub fn read(path: &Path) -> Result<Self> {
        let mut bundle = Self::default();
        bundle.add_file(path, false)?;
        Ok(bundle)
    }

    /// Adds the StageSets and Projects of a file. With `lenient`, other kinds are skipped (a
    /// `--sources` directory also holds Flux objects and manifests).
    pub fn add_file(&mut self, path: &Path, lenient: bool) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let docs = match parse_documents(&text, &YamlLimits::default()) {
            Ok(docs) => docs,
            // Templates (Helm charts standing in for an artifact) are not YAML yet.
            Err(_) if lenient => return Ok(()),
            Err(e) => {
                return Err(Error::Invalid {
                    origin: path.display().to_string(),
                    message: e.to_string(),
                });
            }
        };
        for (index, doc) in docs.into_iter().enumerate() {
            if doc.is_null() {
                continue;
            }
            let origin = format!("{} (document {})", path.display(), index + 1);
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            match (api_version, kind.as_str()) {
                (API_VERSION, "StageSet") => {
                    let stageset: StageSet = typed(&origin, doc)?;
                    validate_stageset(&origin, &stageset)?;
                    self.stagesets.push((path.to_path_buf(), stageset));
                }
                (API_VERSION, "Project") => {
                    let project: Project = typed(&origin, doc)?;
                    validate_project(&origin, &project)?;
                    self.projects.push((path.to_path_buf(), project));
                }
                _ if lenient => {}
                _ => {
                    return Err(Error::Invalid {
                        origin,
                        message: format!(
                            "{api_version} {kind} is neither a {API_VERSION} StageSet nor a Project"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The Project named `name`.
    pub fn project(&self, name: &str) -> Option<&Project> {
        self.projects
            .iter()
            .map(|(_, p)| p)
            .find(|p| p.metadata.name.as_deref() == Some(name))
    }
}

fn typed<T: serde::de::DeserializeOwned>(origin: &str, doc: Value) -> Result<T> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let inner = e.inner().to_string();
        // kubectl's YAML 1.1 reads y/n/yes/no/on/off unquoted as booleans.
        let hint = if inner.contains("invalid type: boolean") && inner.contains("string") {
            " (YAML reads y, n, yes, no, on and off as booleans: quote the value)"
        } else {
            ""
        };
        Error::Invalid {
            origin: origin.to_owned(),
            message: format!("{}: {inner}{hint}", e.path()),
        }
    })
}

/// A DNS label (RFC 1123): what stage names and namespaces must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses a Go-style duration (`90s`, `5m`, `1h30m`, `250ms`) into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else if rest.starts_with('s') {
            (1_000.0, 1)
        } else if rest.starts_with('m') {
            (60_000.0, 1)
        } else if rest.starts_with('h') {
            (3_600_000.0, 1)
        } else {
            return None;
        };
        total += number * unit;
        rest = &rest[len..];
    }
    // Durations are bounded by a day's worth of hours times a thousand: ample, never overflows.
    (total.is_finite() && total < 8.64e10).then_some(total as u64)
}

fn validate_stageset(origin: &str, s: &StageSet) -> Result<()> {
    let name = s.metadata.name.as_deref().unwrap_or_default();
    let at = |field: String, message: String| Error::Invalid {
        origin: format!("{origin}: StageSet {name}"),
        message: format!("{field}: {message}"),
    };
    if name.is_empty() {
        return Err(at("metadata.name".into(), "is required".into()));
    }
    let spec = &s.spec;
    if spec.service_account_name.trim().is_empty() {
        return Err(at(
            "spec.serviceAccountName".into(),
            "is required: every cluster operation impersonates it".into(),
        ));
    }
    for (field, value) in [
        ("spec.interval", Some(&spec.interval)),
        ("spec.timeout", Some(&spec.timeout)),
        ("spec.retryInterval", spec.retry_interval.as_ref()),
    ] {
        if let Some(v) = value
            && parse_duration_ms(v).is_none()
        {
            return Err(at(
                field.into(),
                format!("{v:?} is not a duration (e.g. 30s, 5m, 1h)"),
            ));
        }
    }
    if let Some(ns) = &spec.target_namespace
        && !is_dns_label(ns)
    {
        return Err(at(
            "spec.targetNamespace".into(),
            format!("{ns:?} is not a namespace name"),
        ));
    }
    if spec.stages.is_empty() {
        return Err(at("spec.stages".into(), "needs at least one stage".into()));
    }
    let mut seen = BTreeSet::new();
    for (i, stage) in spec.stages.iter().enumerate() {
        let field = |f: &str| format!("spec.stages[{i}].{f}");
        if !is_dns_label(&stage.name) {
            return Err(at(
                field("name"),
                format!("{:?} is not a DNS label", stage.name),
            ));
        }
        if !seen.insert(stage.name.as_str()) {
            return Err(at(
                field("name"),
                format!("stage {:?} appears twice", stage.name),
            ));
        }
        validate_stage(stage).map_err(|(f, m)| at(field(&f), m))?;
    }
    Ok(())
}

fn validate_stage(stage: &Stage) -> Result<(), (String, String)> {
    match (&stage.source_ref, &stage.source) {
        (Some(_), Some(_)) => Err((
            "source".into(),
            "give either sourceRef or source, not both".into(),
        )),
        (None, None) => Err(("source".into(), "needs a sourceRef or a source".into())),
        (None, Some(inline)) => match (&inline.git, &inline.http) {
            (Some(_), Some(_)) | (None, None) => {
                Err(("source".into(), "needs exactly one of git and http".into()))
            }
            (None, Some(http)) => http
                .digest
                .parse::<sluice_source::Digest>()
                .map(|_| ())
                .map_err(|e| ("source.http.digest".into(), e.to_string())),
            (Some(_), None) => Ok(()),
        },
        (Some(_), None) => Ok(()),
    }?;
    if let Some(t) = &stage.timeout
        && parse_duration_ms(t).is_none()
    {
        return Err(("timeout".into(), format!("{t:?} is not a duration")));
    }
    Ok(())
}

fn validate_project(origin: &str, p: &Project) -> Result<()> {
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let at = |message: String| Error::Invalid {
        origin: format!("{origin}: Project {name}"),
        message,
    };
    if name.is_empty() {
        return Err(at("metadata.name: is required".into()));
    }
    for (field, globs) in [
        ("spec.sourceUrls", &p.spec.source_urls),
        ("spec.destinationNamespaces", &p.spec.destination_namespaces),
    ] {
        for (i, g) in globs.iter().enumerate() {
            globset::Glob::new(g).map_err(|e| at(format!("{field}[{i}]: {e}")))?;
        }
    }
    Ok(())
}
