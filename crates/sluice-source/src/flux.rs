//! Flux source objects (`source.toolkit.fluxcd.io`) as sources: their `status.artifact`.

use std::path::Path;

use sluice_manifest::{YamlLimits, parse_documents};

use crate::spec::{Digest, SourceSpec};
use crate::{Error, Result};

const KINDS: [&str; 4] = [
    "GitRepository",
    "OCIRepository",
    "Bucket",
    "ExternalArtifact",
];
const API_VERSIONS: [&str; 2] = [
    "source.toolkit.fluxcd.io/v1",
    "source.toolkit.fluxcd.io/v1beta2",
];

/// Reads a file holding one Flux source object and returns the artifact it points at.
pub fn read_flux_source(path: &Path) -> Result<SourceSpec> {
    let flux = |reason: String| Error::Flux {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(Error::io(path))?;
    if meta.len() > 4 << 20 {
        return Err(flux("larger than 4 MiB; not a Flux source object".into()));
    }
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    let docs = parse_documents(&text, &YamlLimits::default()).map_err(|e| flux(e.to_string()))?;
    let objects: Vec<_> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let [object] = objects.as_slice() else {
        return Err(flux(format!(
            "expected exactly one Flux source object, found {} documents",
            objects.len()
        )));
    };
    artifact_of(object).map_err(flux)
}

/// The artifact a Flux source object (read from a file or from the cluster) points at.
pub fn artifact_of(object: &serde_json::Value) -> std::result::Result<SourceSpec, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    if !API_VERSIONS.contains(&api_version) || !KINDS.contains(&kind) {
        return Err(format!(
            "{api_version}/{kind} is not a Flux source (expected source.toolkit.fluxcd.io/v1 {})",
            KINDS.join(", ")
        ));
    }
    let name = object["metadata"]["name"].as_str().unwrap_or("<unnamed>");
    let artifact = &object["status"]["artifact"];
    if artifact.is_null() {
        return Err(format!(
            "{kind} {name} has no status.artifact (is the source Ready?)"
        ));
    }
    let url = artifact["url"]
        .as_str()
        .ok_or_else(|| format!("{kind} {name}: status.artifact.url is missing"))?;
    let digest: Digest = artifact["digest"]
        .as_str()
        .ok_or_else(|| format!("{kind} {name}: status.artifact.digest is missing"))?
        .parse()
        .map_err(|e: crate::Error| e.to_string())?;
    Ok(SourceSpec::Artifact {
        url: url.to_owned(),
        digest,
        revision: artifact["revision"].as_str().map(str::to_owned),
    })
}
