//! Rendering a stage: in this process, or by the repo server over mutual TLS.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_api::Stage;
use sluice_source::SourceSpec;
use sluice_stage::plan::{PlanOptions, pin_stage, render_stage};

/// A render request (the repo server's API body).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenderCall {
    /// The stage to render.
    pub stage: Stage,
    /// The StageSet's namespace (default namespace of the objects, Flux sources' namespace).
    pub namespace: String,
    /// Helm release name.
    pub release_name: String,
    /// A source pinned by the caller (the controller pins once per run); without it the repo
    /// server resolves and pins the stage's own source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PinnedSource>,
}

/// A pinned source on the wire. Local directories are not accepted: a caller must not be able
/// to make the repo server read its own file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum PinnedSource {
    /// A Git repository at a commit.
    Git {
        /// Repository URL.
        url: String,
        /// Commit SHA (or ref).
        reference: Option<String>,
    },
    /// An artifact and its digest.
    Artifact {
        /// `http(s)://` URL.
        url: String,
        /// `sha256:<hex>`.
        digest: String,
        /// The publisher's revision, if any.
        revision: Option<String>,
    },
}

impl PinnedSource {
    /// The wire form of `spec`; local directories have none.
    pub fn from_spec(spec: &SourceSpec) -> Result<Self, RenderError> {
        match spec {
            SourceSpec::Git { url, reference } => Ok(Self::Git {
                url: url.clone(),
                reference: reference.clone(),
            }),
            SourceSpec::Artifact {
                url,
                digest,
                revision,
            } => Ok(Self::Artifact {
                url: url.clone(),
                digest: digest.to_string(),
                revision: revision.clone(),
            }),
            SourceSpec::Local(dir) => Err(RenderError::Stage(format!(
                "local directory {} cannot be rendered by a repo server",
                dir.display()
            ))),
        }
    }

    /// Back to a source spec (the digest checked).
    pub fn to_spec(&self) -> Result<SourceSpec, RenderError> {
        Ok(match self {
            Self::Git { url, reference } => SourceSpec::Git {
                url: url.clone(),
                reference: reference.clone(),
            },
            Self::Artifact {
                url,
                digest,
                revision,
            } => SourceSpec::Artifact {
                url: url.clone(),
                digest: digest
                    .parse()
                    .map_err(|e| RenderError::Stage(format!("{e}")))?,
                revision: revision.clone(),
            },
        })
    }

    /// The revision it stands for.
    pub fn revision(&self) -> String {
        match self {
            Self::Git { reference, .. } => reference.clone().unwrap_or_default(),
            Self::Artifact {
                digest, revision, ..
            } => revision.clone().unwrap_or_else(|| digest.clone()),
        }
    }
}

/// What a render produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    /// The revision rendered.
    pub revision: String,
    /// The engine used.
    pub engine: String,
    /// The objects.
    pub objects: Vec<Value>,
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The stage's source or manifests are wrong (the user's to fix).
    #[error("{0}")]
    Stage(String),
    /// The repo server could not be reached or answered nonsense.
    #[error("repo server: {0}")]
    RepoServer(String),
    /// The client's TLS set-up is wrong.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Renders stages.
#[derive(Debug)]
pub enum Renderer {
    /// In this process (local use).
    InProcess(Box<PlanOptions>),
    /// By a repo server.
    Remote {
        /// `https://host:port`.
        url: String,
        /// Agent with the client certificate.
        agent: ureq::Agent,
    },
}

impl Renderer {
    /// A client of the repo server at `url`, trusting `ca` and presenting `cert`/`key`.
    pub fn remote(url: &str, ca: &Path, cert: &Path, key: &Path) -> Result<Self, RenderError> {
        use ureq::tls::{ClientCert, RootCerts, TlsConfig};
        let roots = crate::tls::ureq_certs(ca)?;
        let chain = crate::tls::ureq_certs(cert)?;
        let private = crate::tls::ureq_key(key)?;
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(std::sync::Arc::new(roots)))
            .client_cert(Some(ClientCert::new_with_certs(&chain, private)))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(Duration::from_secs(300)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self::Remote {
            url: url.trim_end_matches('/').to_owned(),
            agent,
        })
    }

    /// Renders (blocking).
    pub fn render(&self, call: &RenderCall) -> Result<Rendered, RenderError> {
        match self {
            Self::InProcess(options) => render_here(call, options),
            Self::Remote { url, agent } => {
                let mut response = agent
                    .post(format!("{url}/api/v1/render"))
                    .header("content-type", "application/json")
                    .send(&serde_json::to_vec(call).unwrap_or_default())
                    .map_err(|e| RenderError::RepoServer(e.to_string()))?;
                let status = response.status().as_u16();
                let body: Value = response
                    .body_mut()
                    .with_config()
                    .limit(256 << 20)
                    .read_to_vec()
                    .map_err(|e| RenderError::RepoServer(e.to_string()))
                    .and_then(|bytes: Vec<u8>| {
                        serde_json::from_slice(&bytes)
                            .map_err(|e| RenderError::RepoServer(e.to_string()))
                    })?;
                match status {
                    200 => serde_json::from_value(body)
                        .map_err(|e| RenderError::RepoServer(e.to_string())),
                    422 => Err(RenderError::Stage(
                        body["error"]["message"].as_str().unwrap_or("").to_owned(),
                    )),
                    _ => Err(RenderError::RepoServer(format!("HTTP {status}: {body}"))),
                }
            }
        }
    }
}

/// Pins (unless the caller did) and renders a stage with local tools (what the repo server
/// itself runs).
pub fn render_here(call: &RenderCall, options: &PlanOptions) -> Result<Rendered, RenderError> {
    let (spec, revision) = match &call.source {
        Some(source) => (source.to_spec()?, source.revision()),
        None => {
            let pinned =
                pin_stage(&call.stage, &call.namespace, options).map_err(RenderError::Stage)?;
            (pinned.spec, pinned.revision)
        }
    };
    let (objects, engine) = render_stage(
        &call.stage,
        &spec,
        options,
        &call.release_name,
        &call.namespace,
    )
    .map_err(RenderError::Stage)?;
    tracing::info!(
        stage = %call.stage.name,
        namespace = %call.namespace,
        revision = %revision,
        objects = objects.len(),
        "rendered"
    );
    Ok(Rendered {
        revision,
        engine: engine.to_owned(),
        objects,
    })
}

/// The controller's renderer when a repo server renders for it.
#[derive(Debug)]
pub struct RemoteStageRenderer(pub Renderer);

impl sluice_controller::reconcile::StageRenderer for RemoteStageRenderer {
    fn render(
        &self,
        stage: &Stage,
        source: &SourceSpec,
        release_name: &str,
        namespace: &str,
    ) -> Result<Vec<Value>, String> {
        let call = RenderCall {
            stage: stage.clone(),
            namespace: namespace.to_owned(),
            release_name: release_name.to_owned(),
            source: Some(PinnedSource::from_spec(source).map_err(|e| e.to_string())?),
        };
        self.0
            .render(&call)
            .map(|r| r.objects)
            .map_err(|e| e.to_string())
    }
}
