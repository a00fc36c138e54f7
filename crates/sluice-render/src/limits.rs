//! Render limits, each with a flag and a default sized for real-world repositories.

use std::time::Duration;

use sluice_manifest::YamlLimits;

/// Bounds on one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Maximum combined bytes of manifests per render (Argo CD's
    /// `reposerver.max.combined.directory.manifests.size`).
    pub max_manifest_bytes: u64,
    /// Maximum size of any single manifest or values file.
    pub max_file_bytes: u64,
    /// Maximum number of rendered objects.
    pub max_objects: usize,
    /// YAML alias expansion and nesting bounds.
    pub yaml: YamlLimits,
    /// Maximum Jsonnet stack depth (function calls).
    pub jsonnet_max_stack: usize,
    /// Wall-clock limit for a Jsonnet evaluation.
    pub jsonnet_timeout: Duration,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 64 << 20,
            max_file_bytes: 8 << 20,
            max_objects: 20_000,
            yaml: YamlLimits::default(),
            jsonnet_max_stack: 500,
            jsonnet_timeout: Duration::from_secs(30),
        }
    }
}
