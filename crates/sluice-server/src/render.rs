//! Rendering a stage: in this process, or by the repo server over mutual TLS.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_api::Stage;
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
        use ureq::tls::{ClientCert, PemItem, RootCerts, TlsConfig};
        let read = |path: &Path| -> Result<Vec<u8>, RenderError> {
            std::fs::read(path)
                .map_err(|e| RenderError::RepoServer(format!("{}: {e}", path.display())))
        };
        let roots: Vec<_> = ureq::tls::parse_pem(&read(ca)?)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let chain: Vec<_> = ureq::tls::parse_pem(&read(cert)?)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let private = ureq::tls::parse_pem(&read(key)?)
            .find_map(|i| match i {
                Ok(PemItem::PrivateKey(k)) => Some(k),
                _ => None,
            })
            .ok_or_else(|| RenderError::RepoServer(format!("{}: no private key", key.display())))?;
        if roots.is_empty() || chain.is_empty() {
            return Err(RenderError::RepoServer(
                "the CA and client certificate files must hold PEM certificates".into(),
            ));
        }
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

/// Pins and renders a stage with local tools (what the repo server itself runs).
pub fn render_here(call: &RenderCall, options: &PlanOptions) -> Result<Rendered, RenderError> {
    let pinned = pin_stage(&call.stage, &call.namespace, options).map_err(RenderError::Stage)?;
    let (objects, engine) = render_stage(
        &call.stage,
        &pinned.spec,
        options,
        &call.release_name,
        &call.namespace,
    )
    .map_err(RenderError::Stage)?;
    Ok(Rendered {
        revision: pinned.revision,
        engine: engine.to_owned(),
        objects,
    })
}
