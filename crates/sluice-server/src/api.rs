//! The API server: routes, authentication, authorization, and the handlers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::audit::{AuditRecord, audit, now_rfc3339, rfc3339};
use crate::error::{ApiError, error_body};
use crate::limiter::{FailureTracker, LoginLimits};
use crate::oidc::{OidcConfig, OidcVerifier};
use crate::rbac::{Rbac, RbacError, Rule, project_role_rules, project_role_subject};
use crate::render::{RenderCall, Renderer};
use crate::serve::RemoteAddr;
use crate::state::{Account, Capability, ServerState, StateFile, TokenRecord};
use crate::store::{
    Event, GATE_ANNOTATION_PREFIX, RECONCILE_ANNOTATION, Snapshot, Store, annotate,
};
use crate::tokens::{Claims, ISSUER, TokenError, TokenKind, TokenSigner, peek_issuer};
use crate::webhook::WebhookConfig;

/// Longest username accepted (checked before any hashing).
pub const MAX_USERNAME: usize = 64;
/// Longest password accepted (bcrypt reads 72 bytes; longer ones are refused, not truncated).
pub const MAX_PASSWORD: usize = 72;
/// Shortest new password.
pub const MIN_PASSWORD: usize = 8;
/// Longest bearer token accepted.
const MAX_TOKEN: usize = 16 * 1024;
/// Largest page of a list.
pub const MAX_LIMIT: usize = 500;
/// How often cluster mode rereads the state Secret (changes made by other replicas).
const STATE_RELOAD: Duration = Duration::from_secs(5);
/// Largest API request body (webhooks have their own limit).
const MAX_API_BODY: usize = 64 * 1024;

/// How the server behaves.
#[derive(Debug)]
pub struct ServerConfig {
    /// Lifetime of login sessions.
    pub session_ttl: Duration,
    /// bcrypt cost of new password hashes.
    pub bcrypt_cost: u32,
    /// Brute-force protection.
    pub login_limits: LoginLimits,
    /// Logins (bcrypt checks) running at once; more get 429.
    pub max_concurrent_logins: usize,
    /// User policy rules (besides built-ins and project roles).
    pub policy: Vec<Rule>,
    /// Role every authenticated caller also has (none: deny by default).
    pub default_role: Option<String>,
    /// SSO.
    pub oidc: Option<OidcConfig>,
    /// Webhook secrets.
    pub webhook: WebhookConfig,
    /// Largest webhook body.
    pub webhook_max_body: usize,
    /// Webhook reconcile requests queued at most (503 beyond).
    pub webhook_queue: usize,
    /// Webhook reconcile requests carried out per second at most.
    pub webhook_rate: u32,
    /// Who renders manifests.
    pub renderer: Renderer,
    /// Renders running at once.
    pub render_concurrency: usize,
}

impl ServerConfig {
    /// Defaults with `renderer`.
    pub fn new(renderer: Renderer) -> Self {
        Self {
            session_ttl: Duration::from_secs(24 * 3600),
            bcrypt_cost: bcrypt::DEFAULT_COST,
            login_limits: LoginLimits::default(),
            max_concurrent_logins: std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1),
            policy: Vec::new(),
            default_role: None,
            oidc: None,
            webhook: WebhookConfig::default(),
            webhook_max_body: 1 << 20,
            webhook_queue: 1024,
            webhook_rate: 50,
            renderer,
            render_concurrency: 2,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The served directory.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The state file.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The policy.
    #[error(transparent)]
    Rbac(#[from] RbacError),
    /// The OIDC provider configuration.
    #[error(transparent)]
    Oidc(#[from] crate::oidc::OidcError),
    /// The Kubernetes API (cluster mode).
    #[error("cluster: {0}")]
    Cluster(String),
    /// Hashing the initial password.
    #[error("hashing the initial admin password: {0}")]
    Hash(String),
}

/// The API server (cheap to clone).
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

/// Where the server's state and objects live.
enum Backend {
    /// `--local DIR`.
    Local {
        state_file: StateFile,
        initial_password_file: PathBuf,
    },
    /// The Kubernetes API.
    Cluster(Box<crate::cluster::ClusterBackend>),
}

struct Inner {
    config: ServerConfig,
    store: Arc<Store>,
    state: RwLock<ServerState>,
    /// Serialises state changes (each one is persisted before it is visible).
    state_writer: tokio::sync::Mutex<()>,
    backend: Backend,
    signer: TokenSigner,
    rbac: Arc<Rbac>,
    failures: FailureTracker,
    logins: tokio::sync::Semaphore,
    renders: tokio::sync::Semaphore,
    oidc: Option<OidcVerifier>,
    /// Visible StageSet positions per caller: (snapshot generation, positions).
    visible: Mutex<HashMap<String, VisibleCache>>,
    webhook_queue: tokio::sync::mpsc::Sender<(String, String)>,
    dummy_hash: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Server")
    }
}

/// Positions of the StageSets a caller may see, for one snapshot generation.
type VisibleCache = (u64, Arc<Vec<u32>>);

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Account name, `proj:<project>:<role>`, or the OIDC user.
    pub name: String,
    /// RBAC subjects: the name and the caller's groups.
    pub subjects: Vec<String>,
    /// How the caller authenticated.
    pub kind: &'static str,
    /// Token id (server-issued tokens).
    pub jti: Option<String>,
    /// Token expiry.
    pub exp: i64,
    /// Project role tokens only reach this project.
    pub project: Option<String>,
}

fn hash_password(password: &str, cost: u32) -> Result<String, String> {
    bcrypt::hash(password, cost).map_err(|e| e.to_string())
}

fn random_password() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    crate::fill_random(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Server {
    /// Local mode: serves `dir`, keeping state in its `0600` state file. On first start,
    /// creates `admin` with a random password written to `dir/initial-admin-password`.
    pub async fn open_local(dir: &Path, config: ServerConfig) -> Result<Self, StartError> {
        let store = Store::load_dir(dir)?;
        let state_file = StateFile::in_dir(dir);
        let initial = dir.join(crate::state::INITIAL_PASSWORD_FILE);
        let state = match state_file.load()? {
            Some(state) => state,
            None => {
                let password = random_password();
                let hash =
                    hash_password(&password, config.bcrypt_cost).map_err(StartError::Hash)?;
                let state = ServerState::fresh(hash);
                state_file.save(&state)?;
                crate::state::write_private(&initial, format!("{password}\n").as_bytes())?;
                tracing::info!(
                    file = %initial.display(),
                    "created the admin account; its initial password is in the file (removed at the first password change)"
                );
                state
            }
        };
        let backend = Backend::Local {
            state_file,
            initial_password_file: initial,
        };
        Self::build(Arc::new(store), state, backend, config).await
    }

    /// Cluster mode: StageSets and Projects from the Kubernetes API, the state in the Secret
    /// `sluice-server-state` of `namespace`. On first start the initial admin password goes to
    /// the Secret `sluice-initial-admin-password`.
    pub async fn open_cluster(
        kube_config: kube::Config,
        namespace: &str,
        config: ServerConfig,
    ) -> Result<Self, StartError> {
        let client = kube::Client::try_from(kube_config.clone())
            .map_err(|e| StartError::Cluster(e.to_string()))?;
        let backend = crate::cluster::ClusterBackend::new(kube_config, namespace)
            .map_err(|e| StartError::Cluster(e.to_string()))?;
        let state = match backend
            .load_state()
            .await
            .map_err(|e| StartError::Cluster(e.to_string()))?
        {
            Some(state) => state,
            None => {
                let password = random_password();
                let hash =
                    hash_password(&password, config.bcrypt_cost).map_err(StartError::Hash)?;
                let state = ServerState::fresh(hash);
                backend
                    .create_state(&state, &password)
                    .await
                    .map_err(|e| StartError::Cluster(e.to_string()))?;
                tracing::info!(
                    secret = %format!("{namespace}/{}", crate::cluster::INITIAL_PASSWORD_SECRET),
                    "created the admin account; its initial password is in the Secret (deleted at the first password change)"
                );
                state
            }
        };
        let store = Arc::new(Store::new(Default::default(), None));
        tokio::spawn(crate::cluster::watch(client, Arc::clone(&store)));
        let server = Self::build(store, state, Backend::Cluster(Box::new(backend)), config).await?;
        // Other replicas change the state too (logins are local, but revocations, accounts
        // and keys are shared): reread the Secret every few seconds.
        let weak = Arc::downgrade(&server.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(STATE_RELOAD).await;
                let Some(inner) = weak.upgrade() else { break };
                if let Backend::Cluster(cluster) = &inner.backend {
                    let _writer = inner.state_writer.lock().await;
                    match cluster.load_state().await {
                        Ok(Some(state)) => {
                            if let Ok(mut current) = inner.state.write() {
                                *current = state;
                            }
                        }
                        Ok(None) => tracing::warn!("the server state Secret disappeared"),
                        Err(e) => tracing::warn!(error = %e, "could not reread the server state"),
                    }
                }
            }
        });
        Ok(server)
    }

    async fn build(
        store: Arc<Store>,
        state: ServerState,
        backend: Backend,
        config: ServerConfig,
    ) -> Result<Self, StartError> {
        let rbac = Arc::new(build_rbac(&config, &store.snapshot()).await?);
        let key = hex::decode(&state.signing_key).unwrap_or_default();
        if key.len() < 32 {
            return Err(StartError::Hash(
                "the state file's signing key is too short".into(),
            ));
        }
        let oidc = match &config.oidc {
            Some(c) => Some(OidcVerifier::new(c.clone())?),
            None => None,
        };
        let dummy_hash =
            hash_password("not-a-password", config.bcrypt_cost).map_err(StartError::Hash)?;
        let (tx, rx) = tokio::sync::mpsc::channel(config.webhook_queue.max(1));
        let server = Self {
            inner: Arc::new(Inner {
                signer: TokenSigner::new(&key),
                failures: FailureTracker::new(config.login_limits.clone()),
                logins: tokio::sync::Semaphore::new(config.max_concurrent_logins.max(1)),
                renders: tokio::sync::Semaphore::new(config.render_concurrency.max(1)),
                rbac,
                oidc,
                store,
                state: RwLock::new(state),
                state_writer: tokio::sync::Mutex::new(()),
                backend,
                visible: Mutex::new(HashMap::new()),
                webhook_queue: tx,
                dummy_hash,
                config,
            }),
        };
        tokio::spawn(webhook_worker(server.clone(), rx));
        Ok(server)
    }

    /// The routes.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/api/v1/session", post(login).delete(logout))
            .route("/api/v1/session/userinfo", get(userinfo))
            .route("/api/v1/account", get(own_account))
            .route("/api/v1/account/password", put(change_password))
            .route("/api/v1/accounts", get(list_accounts).post(create_account))
            .route(
                "/api/v1/accounts/{name}",
                get(get_account)
                    .patch(update_account)
                    .delete(delete_account),
            )
            .route(
                "/api/v1/accounts/{name}/tokens",
                get(list_api_keys).post(create_api_key),
            )
            .route(
                "/api/v1/accounts/{name}/tokens/{id}",
                axum::routing::delete(delete_api_key),
            )
            .route("/api/v1/projects", get(list_projects))
            .route("/api/v1/projects/{name}", get(get_project))
            .route(
                "/api/v1/projects/{project}/roles/{role}/token",
                post(create_project_token),
            )
            .route(
                "/api/v1/projects/{project}/roles/{role}/token/{jti}",
                axum::routing::delete(delete_project_token),
            )
            .route("/api/v1/stagesets", get(list_stagesets))
            .route("/api/v1/stagesets/{namespace}/{name}", get(get_stageset))
            .route(
                "/api/v1/stagesets/{namespace}/{name}/stages",
                get(get_stages),
            )
            .route(
                "/api/v1/stagesets/{namespace}/{name}/stages/{stage}/manifests",
                get(get_manifests),
            )
            .route(
                "/api/v1/stagesets/{namespace}/{name}/stages/{stage}/diff",
                get(get_diff),
            )
            .route(
                "/api/v1/stagesets/{namespace}/{name}/stages/{stage}/approve",
                post(approve_gate),
            )
            .route(
                "/api/v1/stagesets/{namespace}/{name}/reconcile",
                post(request_reconcile),
            )
            .route(
                "/api/v1/stagesets/{namespace}/{name}/events",
                get(get_events),
            )
            .layer(DefaultBodyLimit::max(MAX_API_BODY));
        let webhook = Router::new()
            .route("/api/webhook", post(webhook))
            .layer(DefaultBodyLimit::max(self.inner.config.webhook_max_body));
        Router::new()
            .merge(api)
            .merge(webhook)
            .route("/api/openapi.json", get(openapi))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(|| async { "ok" }))
            .fallback(|| async { ApiError::NotFound("route".into()) })
            .layer(middleware::from_fn_with_state(
                self.clone(),
                refuse_oversized,
            ))
            .layer(middleware::from_fn(json_errors))
            .with_state(self.clone())
    }

    /// The store served.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Authenticates a bearer token.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::Malformed);
        }
        let issuer = peek_issuer(token).ok_or(TokenError::Malformed)?;
        if issuer == ISSUER {
            let claims = self.inner.signer.verify(token)?;
            return self.check_live(claims);
        }
        match &self.inner.oidc {
            Some(oidc) if oidc.issuer() == issuer => {
                let server = self.clone();
                let token = token.to_owned();
                let identity = tokio::task::spawn_blocking(move || {
                    server.inner.oidc.as_ref().map(|o| o.verify(&token))
                })
                .await
                .ok()
                .flatten()
                .ok_or(TokenError::Malformed)??;
                let mut subjects = vec![identity.subject.clone()];
                subjects.extend(identity.groups);
                Ok(Caller {
                    name: identity.subject,
                    subjects,
                    kind: "oidc",
                    jti: None,
                    exp: identity.exp,
                    project: None,
                })
            }
            _ => Err(TokenError::Issuer),
        }
    }

    /// Checks a verified token against the current state: revocations, accounts, projects.
    fn check_live(&self, claims: Claims) -> Result<Caller, TokenError> {
        let state = self.inner.state.read().map_err(|_| TokenError::Revoked)?;
        if state.revoked.contains_key(&claims.jti) {
            return Err(TokenError::Revoked);
        }
        let account_ok = |capability: Capability| {
            state.accounts.get(&claims.sub).is_some_and(|a| {
                a.enabled && a.can(capability) && a.generation == claims.generation
            })
        };
        match claims.kind {
            TokenKind::Session if account_ok(Capability::Login) => {}
            TokenKind::ApiKey
                if account_ok(Capability::ApiKey)
                    && state.accounts[&claims.sub]
                        .api_keys
                        .iter()
                        .any(|k| k.id == claims.jti) => {}
            TokenKind::Project => {
                let (Some(project), Some(role)) = (&claims.project, &claims.role) else {
                    return Err(TokenError::Malformed);
                };
                let recorded = state
                    .project_tokens
                    .get(project)
                    .and_then(|roles| roles.get(role))
                    .is_some_and(|tokens| tokens.iter().any(|t| t.id == claims.jti));
                let role_exists = self
                    .inner
                    .store
                    .snapshot()
                    .projects
                    .get(project)
                    .is_some_and(|p| p.spec.roles.iter().any(|r| &r.name == role));
                if !recorded || !role_exists || claims.sub != project_role_subject(project, role) {
                    return Err(TokenError::Revoked);
                }
                return Ok(Caller {
                    name: claims.sub.clone(),
                    subjects: vec![claims.sub],
                    kind: "project",
                    jti: Some(claims.jti),
                    exp: claims.exp,
                    project: Some(project.clone()),
                });
            }
            _ => return Err(TokenError::Revoked),
        }
        Ok(Caller {
            name: claims.sub.clone(),
            subjects: vec![claims.sub],
            kind: match claims.kind {
                TokenKind::ApiKey => "apiKey",
                _ => "session",
            },
            jti: Some(claims.jti),
            exp: claims.exp,
            project: None,
        })
    }

    /// Whether `caller` may `action` on `resource` `object`.
    pub fn allowed(&self, caller: &Caller, resource: &str, action: &str, object: &str) -> bool {
        if let Some(project) = &caller.project {
            let inside = match resource {
                "projects" => object == project,
                _ => object
                    .strip_prefix(project.as_str())
                    .is_some_and(|rest| rest.starts_with('/')),
            };
            if !inside {
                return false;
            }
        }
        self.inner
            .rbac
            .can(&caller.subjects, resource, action, object)
    }

    async fn save_state(&self, state: &ServerState) -> Result<(), ApiError> {
        match &self.inner.backend {
            Backend::Local { state_file, .. } => state_file
                .save(state)
                .map_err(|e| ApiError::Internal(e.to_string())),
            Backend::Cluster(cluster) => cluster.save_state(state).await,
        }
    }

    /// Mutates a copy of the state and persists it; only a persisted change becomes visible.
    async fn change_state<T>(
        &self,
        change: impl FnOnce(&mut ServerState) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _writer = self.inner.state_writer.lock().await;
        let mut next = self
            .inner
            .state
            .read()
            .map_err(|_| ApiError::Internal("state lock poisoned".into()))?
            .clone();
        let out = change(&mut next)?;
        next.prune_revoked(crate::now_secs());
        self.save_state(&next).await?;
        *self
            .inner
            .state
            .write()
            .map_err(|_| ApiError::Internal("state lock poisoned".into()))? = next;
        Ok(out)
    }

    /// Removes the initial admin password hand-over (file or Secret).
    async fn forget_initial_password(&self) {
        match &self.inner.backend {
            Backend::Local {
                initial_password_file,
                ..
            } => {
                let _ = std::fs::remove_file(initial_password_file);
            }
            Backend::Cluster(cluster) => cluster.delete_initial_password().await,
        }
    }

    fn visible_positions(&self, caller: &Caller, snapshot: &Snapshot) -> Arc<Vec<u32>> {
        let key = format!(
            "{}\u{1e}{:?}",
            caller.subjects.join("\u{1f}"),
            caller.project
        );
        if let Ok(cache) = self.inner.visible.lock()
            && let Some((generation, positions)) = cache.get(&key)
            && *generation == snapshot.generation
        {
            return Arc::clone(positions);
        }
        let positions: Arc<Vec<u32>> = Arc::new(
            snapshot
                .stagesets
                .iter()
                .enumerate()
                .filter(|(_, e)| self.allowed(caller, "stagesets", "get", &e.object))
                .map(|(i, _)| i as u32)
                .collect(),
        );
        if let Ok(mut cache) = self.inner.visible.lock() {
            if cache.len() >= 10_000 {
                cache.clear();
            }
            cache.insert(key, (snapshot.generation, Arc::clone(&positions)));
        }
        positions
    }
}

async fn build_rbac(config: &ServerConfig, snapshot: &Snapshot) -> Result<Rbac, RbacError> {
    let mut rules = config.policy.clone();
    for (name, project) in &snapshot.projects {
        for role in &project.spec.roles {
            match project_role_rules(name, &role.name, &role.policies, &role.groups) {
                Ok(r) => rules.extend(r),
                Err(e) => {
                    tracing::warn!(security = 2, CWE = 285, error = %e, "project role policy refused; the role grants nothing");
                }
            }
        }
    }
    Rbac::new(rules, config.default_role.clone()).await
}

/// Answers 413 from the declared `Content-Length` alone, before reading any of the body (the
/// body limits still apply to bodies without a length).
async fn refuse_oversized(State(server): State<Server>, request: Request, next: Next) -> Response {
    let limit = if request.uri().path() == "/api/webhook" {
        server.inner.config.webhook_max_body
    } else {
        MAX_API_BODY
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let mut response = ApiError::TooLarge(limit).into_response();
        // The unread body makes the connection unusable for another request.
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    next.run(request).await
}

/// Turns every error response without a JSON body (unknown route, wrong method, a
/// rejected body or path) into the API's JSON error shape.
async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let (parts, body) = response.into_parts();
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let message = String::from_utf8_lossy(&text).trim().to_owned();
        let message = if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            message
        };
        let mut out = (status, axum::Json(error_body(status, &message))).into_response();
        for (name, value) in &parts.headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                out.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return out;
    }
    response
}

fn remote(request_headers: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    request_headers.get::<RemoteAddr>().map(|r| r.0)
}

/// Authenticated caller plus the client address, extracted from a request.
struct Auth {
    caller: Caller,
    remote: Option<std::net::SocketAddr>,
}

impl axum::extract::FromRequestParts<Server> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        server: &Server,
    ) -> Result<Self, ApiError> {
        let remote = remote(&parts.extensions);
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::Unauthenticated(
                "authentication required: send Authorization: Bearer <token>".into(),
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthenticated("expected a Bearer token".into()))?;
        match server.authenticate(token).await {
            Ok(caller) => Ok(Self { caller, remote }),
            Err(e) => {
                let from = remote.map(|r| r.to_string()).unwrap_or_default();
                if e.is_suspicious() {
                    tracing::warn!(security = 3, CWE = 347, remote = %from, reason = %e, "token refused: malformed or forged");
                } else {
                    tracing::info!(security = 2, CWE = 613, remote = %from, reason = %e, "token refused");
                }
                Err(ApiError::Unauthenticated(e.to_string()))
            }
        }
    }
}

/// A JSON body parsed with the API's error shape for mistakes.
struct JsonBody<T>(T);

impl<T: DeserializeOwned> axum::extract::FromRequest<Server> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, server: &Server) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, server).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(MAX_API_BODY)
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
    }
}

use axum::extract::FromRequest as _;

fn deny(server: &Server, auth: &Auth, resource: &str, action: &str, object: &str) -> ApiError {
    let _ = server;
    tracing::info!(
        security = 2,
        CWE = 285,
        actor = %auth.caller.name,
        resource,
        action,
        object,
        "access denied"
    );
    audit(&AuditRecord {
        actor: &auth.caller.name,
        action,
        resource,
        object,
        remote: auth.remote,
        result: "denied",
    });
    ApiError::Forbidden(format!("{action} {resource} {object}"))
}

fn require(
    server: &Server,
    auth: &Auth,
    resource: &str,
    action: &str,
    object: &str,
) -> Result<(), ApiError> {
    if server.allowed(&auth.caller, resource, action, object) {
        Ok(())
    } else {
        Err(deny(server, auth, resource, action, object))
    }
}

fn ok_audit(auth: &Auth, action: &str, resource: &str, object: &str) {
    audit(&AuditRecord {
        actor: &auth.caller.name,
        action,
        resource,
        object,
        remote: auth.remote,
        result: "success",
    });
}

/// Records an event naming the actor: in the server's event log and, in cluster mode, as a
/// Kubernetes Event on `reference`.
async fn event(
    server: &Server,
    target: &str,
    reference: Option<k8s_openapi::api::core::v1::ObjectReference>,
    reason: &str,
    actor: &str,
    message: String,
) {
    server.inner.store.record(
        target,
        Event {
            type_: "Normal".into(),
            reason: reason.into(),
            message: message.clone(),
            actor: actor.into(),
            time: now_rfc3339(),
        },
    );
    if let (Backend::Cluster(cluster), Some(reference)) = (&server.inner.backend, reference) {
        cluster
            .record_event(reference, reason, reason, message)
            .await;
    }
}

fn stageset_ref(
    stageset: &sluice_api::StageSet,
) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
    use kube::Resource;
    Some(stageset.object_ref(&()))
}

fn project_ref(
    project: &sluice_api::Project,
) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
    use kube::Resource;
    Some(project.object_ref(&()))
}

/// Sets an annotation on a StageSet: in memory (local mode) or through the API.
async fn annotate_stageset(
    server: &Server,
    key: &str,
    annotation: &str,
    value: &str,
) -> Result<(), ApiError> {
    match &server.inner.backend {
        Backend::Local { .. } => {
            server
                .inner
                .store
                .update_stageset(key, |s| annotate(s, annotation, value.to_owned()));
            Ok(())
        }
        Backend::Cluster(cluster) => {
            let (namespace, name) = key.split_once('/').unwrap_or((key, ""));
            cluster
                .annotate_stageset(namespace, name, annotation, value)
                .await
        }
    }
}

// ---------------------------------------------------------------- sessions and accounts

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

async fn login(State(server): State<Server>, request: Request) -> Result<Response, ApiError> {
    let remote = remote(request.extensions());
    let JsonBody(body): JsonBody<LoginRequest> = JsonBody::from_request(request, &server).await?;
    let username = body.username.trim().to_owned();
    if username.is_empty() || body.password.is_empty() {
        return Err(ApiError::BadRequest(
            "username and password are required".into(),
        ));
    }
    if username.chars().any(char::is_control) {
        // Usernames reach log lines: no forged lines through embedded newlines (CWE-117).
        return Err(ApiError::BadRequest(
            "usernames cannot hold control characters".into(),
        ));
    }
    if username.chars().count() > MAX_USERNAME || body.password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest(format!(
            "username longer than {MAX_USERNAME} characters or password longer than {MAX_PASSWORD} bytes"
        )));
    }
    let inner = &server.inner;
    let delay = inner.failures.delay(&username);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let _permit = inner.logins.try_acquire().map_err(|_| {
        ApiError::TooManyRequests("too many logins in progress; retry shortly".into())
    })?;
    let (hash, usable) = {
        let state = inner
            .state
            .read()
            .map_err(|_| ApiError::Internal("lock".into()))?;
        match state.accounts.get(&username) {
            Some(a) if a.password_hash.is_some() => (
                a.password_hash.clone().unwrap_or_default(),
                a.enabled && a.can(Capability::Login),
            ),
            // Unknown users cost one bcrypt check too: timing must not tell them apart.
            _ => (inner.dummy_hash.clone(), false),
        }
    };
    let password = body.password;
    let matched =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
    let from = remote.map(|r| r.to_string()).unwrap_or_default();
    if !(matched && usable) {
        let failures = inner.failures.fail(&username);
        if failures == inner.config.login_limits.threshold {
            tracing::error!(
                security = 5,
                CWE = 307,
                username = %username,
                remote = %from,
                failures,
                "brute force suspected: repeated failed logins; further attempts are delayed"
            );
        } else {
            tracing::warn!(security = 2, CWE = 287, username = %username, remote = %from, "login failed");
        }
        audit(&AuditRecord {
            actor: &username,
            action: "login",
            resource: "accounts",
            object: &username,
            remote,
            result: "failed",
        });
        return Err(ApiError::Unauthenticated(
            "invalid username or password".into(),
        ));
    }
    inner.failures.succeed(&username);
    let generation = {
        let state = inner
            .state
            .read()
            .map_err(|_| ApiError::Internal("lock".into()))?;
        state
            .accounts
            .get(&username)
            .map(|a| a.generation)
            .unwrap_or_default()
    };
    let mut claims = Claims::new(
        username.clone(),
        TokenKind::Session,
        Some(inner.config.session_ttl.as_secs() as i64),
    );
    claims.generation = generation;
    let token = inner.signer.sign(&claims);
    tracing::info!(security = 1, username = %username, remote = %from, "login succeeded");
    audit(&AuditRecord {
        actor: &username,
        action: "login",
        resource: "accounts",
        object: &username,
        remote,
        result: "success",
    });
    Ok(axum::Json(json!({"token": token, "expiresAt": rfc3339(claims.exp)})).into_response())
}

async fn logout(State(server): State<Server>, auth: Auth) -> Result<Response, ApiError> {
    let Some(jti) = auth.caller.jti.clone() else {
        return Err(ApiError::BadRequest(
            "OIDC tokens are revoked at the identity provider".into(),
        ));
    };
    let exp = auth.caller.exp;
    server
        .change_state(|state| {
            state.revoked.insert(jti.clone(), exp);
            Ok(())
        })
        .await?;
    ok_audit(&auth, "logout", "accounts", &auth.caller.name);
    Ok(axum::Json(json!({"revoked": jti})).into_response())
}

async fn userinfo(auth: Auth) -> Response {
    axum::Json(json!({
        "username": auth.caller.name,
        "groups": auth.caller.subjects.iter().skip(1).collect::<Vec<_>>(),
        "kind": auth.caller.kind,
        "expiresAt": rfc3339(auth.caller.exp),
    }))
    .into_response()
}

fn account_json(name: &str, account: &Account) -> Value {
    json!({
        "name": name,
        "enabled": account.enabled,
        "capabilities": account.capabilities,
        "passwordChangedAt": account.password_changed_at.map(rfc3339),
        "tokens": account.api_keys.iter().map(token_json).collect::<Vec<_>>(),
    })
}

fn token_json(t: &TokenRecord) -> Value {
    json!({"id": t.id, "issuedAt": rfc3339(t.issued_at), "expiresAt": t.expires_at.map(rfc3339)})
}

fn local_account(auth: &Auth) -> Result<String, ApiError> {
    match auth.caller.kind {
        "session" | "apiKey" => Ok(auth.caller.name.clone()),
        _ => Err(ApiError::BadRequest(
            "only local accounts have an account here".into(),
        )),
    }
}

async fn own_account(State(server): State<Server>, auth: Auth) -> Result<Response, ApiError> {
    let name = local_account(&auth)?;
    let state = server
        .inner
        .state
        .read()
        .map_err(|_| ApiError::Internal("lock".into()))?;
    let account = state
        .accounts
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
    Ok(axum::Json(account_json(&name, account)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

fn check_new_password(password: &str) -> Result<(), ApiError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD || password.trim().is_empty()
    {
        return Err(ApiError::BadRequest(format!(
            "the new password must be {MIN_PASSWORD} to {MAX_PASSWORD} bytes long"
        )));
    }
    Ok(())
}

async fn change_password(
    State(server): State<Server>,
    auth: Auth,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Response, ApiError> {
    let name = local_account(&auth)?;
    if body.current_password.is_empty() || body.current_password.len() > MAX_PASSWORD {
        return Err(ApiError::BadRequest("currentPassword is required".into()));
    }
    check_new_password(&body.new_password)?;
    let inner = &server.inner;
    let delay = inner.failures.delay(&name);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let _permit = inner.logins.try_acquire().map_err(|_| {
        ApiError::TooManyRequests("too many password checks in progress; retry shortly".into())
    })?;
    let hash = {
        let state = inner
            .state
            .read()
            .map_err(|_| ApiError::Internal("lock".into()))?;
        state
            .accounts
            .get(&name)
            .and_then(|a| a.password_hash.clone())
    };
    let cost = inner.config.bcrypt_cost;
    let (current, new) = (body.current_password, body.new_password);
    let dummy = inner.dummy_hash.clone();
    let (matched, new_hash) = tokio::task::spawn_blocking(move || {
        let matched = bcrypt::verify(current, hash.as_deref().unwrap_or(&dummy)).unwrap_or(false)
            && hash.is_some();
        (matched, matched.then(|| hash_password(&new, cost)))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    if !matched {
        inner.failures.fail(&name);
        tracing::warn!(security = 2, CWE = 287, username = %name, "password change with a wrong current password");
        audit(&AuditRecord {
            actor: &name,
            action: "change-password",
            resource: "accounts",
            object: &name,
            remote: auth.remote,
            result: "failed",
        });
        return Err(ApiError::Forbidden(
            "the current password does not match".into(),
        ));
    }
    let new_hash = new_hash
        .unwrap_or_else(|| Err("no hash".into()))
        .map_err(ApiError::Internal)?;
    server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            account.password_hash = Some(new_hash);
            account.generation += 1;
            account.password_changed_at = Some(crate::now_secs());
            // API keys were minted with the old password; they go too.
            account.api_keys.clear();
            Ok(())
        })
        .await?;
    if name == "admin" {
        server.forget_initial_password().await;
    }
    ok_audit(&auth, "change-password", "accounts", &name);
    Ok(axum::Json(
        json!({"message": "password changed; every earlier token of this account is revoked"}),
    )
    .into_response())
}

async fn list_accounts(State(server): State<Server>, auth: Auth) -> Result<Response, ApiError> {
    let state = server
        .inner
        .state
        .read()
        .map_err(|_| ApiError::Internal("lock".into()))?;
    let items: Vec<Value> = state
        .accounts
        .iter()
        .filter(|(name, _)| server.allowed(&auth.caller, "accounts", "get", name))
        .map(|(name, a)| account_json(name, a))
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

fn visible_account(server: &Server, auth: &Auth, name: &str) -> Result<(), ApiError> {
    let exists = server
        .inner
        .state
        .read()
        .map(|s| s.accounts.contains_key(name))
        .unwrap_or(false);
    if !exists || !server.allowed(&auth.caller, "accounts", "get", name) {
        return Err(ApiError::NotFound(format!("account {name}")));
    }
    Ok(())
}

async fn get_account(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    let state = server
        .inner
        .state
        .read()
        .map_err(|_| ApiError::Internal("lock".into()))?;
    let account = state
        .accounts
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
    Ok(axum::Json(account_json(&name, account)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccountRequest {
    name: String,
    #[serde(default)]
    capabilities: Vec<Capability>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USERNAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with("proj:")
}

async fn hash_off_thread(
    server: &Server,
    password: Option<String>,
) -> Result<Option<String>, ApiError> {
    let Some(password) = password else {
        return Ok(None);
    };
    check_new_password(&password)?;
    let cost = server.inner.config.bcrypt_cost;
    tokio::task::spawn_blocking(move || hash_password(&password, cost))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(Some)
        .map_err(ApiError::Internal)
}

async fn create_account(
    State(server): State<Server>,
    auth: Auth,
    JsonBody(body): JsonBody<AccountRequest>,
) -> Result<Response, ApiError> {
    if !valid_account_name(&body.name) {
        return Err(ApiError::BadRequest(format!(
            "account names are 1 to {MAX_USERNAME} characters of a-z, 0-9, '-', '_' and '.'"
        )));
    }
    require(&server, &auth, "accounts", "create", &body.name)?;
    let hash = hash_off_thread(&server, body.password).await?;
    let mut capabilities = body.capabilities;
    capabilities.sort();
    capabilities.dedup();
    let account = Account {
        password_hash: hash,
        capabilities,
        enabled: body.enabled.unwrap_or(true),
        generation: 0,
        password_changed_at: None,
        api_keys: Vec::new(),
    };
    let view = account_json(&body.name, &account);
    server
        .change_state(|state| {
            if state.accounts.contains_key(&body.name) {
                return Err(ApiError::Conflict(format!("account {} exists", body.name)));
            }
            state.accounts.insert(body.name.clone(), account);
            Ok(())
        })
        .await?;
    ok_audit(&auth, "create", "accounts", &body.name);
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccountUpdate {
    #[serde(default)]
    capabilities: Option<Vec<Capability>>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
}

async fn update_account(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
    JsonBody(body): JsonBody<AccountUpdate>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "update", &name)?;
    if name == auth.caller.name && auth.caller.kind != "oidc" {
        // A stolen session must not be able to take the account over or lock its owner out.
        if body.password.is_some() {
            return Err(ApiError::Conflict(
                "change your own password with PUT /api/v1/account/password (it needs the current one)".into(),
            ));
        }
        if body.enabled == Some(false)
            || body
                .capabilities
                .as_ref()
                .is_some_and(|c| !c.contains(&Capability::Login))
        {
            return Err(ApiError::Conflict(
                "you cannot disable your own account or remove its login capability".into(),
            ));
        }
    }
    let hash = hash_off_thread(&server, body.password).await?;
    let view = server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            if let Some(mut caps) = body.capabilities {
                caps.sort();
                caps.dedup();
                if !caps.contains(&Capability::ApiKey) {
                    account.api_keys.clear();
                }
                account.capabilities = caps;
            }
            if let Some(enabled) = body.enabled {
                account.enabled = enabled;
            }
            if let Some(hash) = hash {
                account.password_hash = Some(hash);
                account.generation += 1;
                account.password_changed_at = Some(crate::now_secs());
                account.api_keys.clear();
            }
            Ok(account_json(&name, account))
        })
        .await?;
    ok_audit(&auth, "update", "accounts", &name);
    Ok(axum::Json(view).into_response())
}

async fn delete_account(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "delete", &name)?;
    if name == "admin" {
        return Err(ApiError::Conflict(
            "the admin account cannot be deleted; disable it instead".into(),
        ));
    }
    server
        .change_state(|state| {
            state.accounts.remove(&name);
            Ok(())
        })
        .await?;
    ok_audit(&auth, "delete", "accounts", &name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenRequest {
    /// Seconds, or a duration like `90d`, `24h`, `30m`.
    #[serde(default)]
    expires_in: Option<Value>,
}

/// Seconds from `expiresIn` (a number of seconds or a duration string); `None`: no expiry.
fn expires_in(value: Option<&Value>) -> Result<Option<i64>, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "expiresIn is a positive number of seconds or a duration such as 30m, 24h, 90d".into(),
        )
    };
    let secs = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(bad)?,
        Some(Value::String(s)) => {
            let s = s.trim();
            if let Some(days) = s.strip_suffix('d') {
                days.parse::<i64>()
                    .map_err(|_| bad())?
                    .checked_mul(86_400)
                    .ok_or_else(bad)?
            } else {
                let ms = sluice_stage::load::parse_duration_ms(s).ok_or_else(bad)?;
                i64::try_from(ms / 1000).map_err(|_| bad())?
            }
        }
        Some(_) => return Err(bad()),
    };
    if secs <= 0 || secs > 10 * 365 * 86_400 {
        return Err(bad());
    }
    Ok(Some(secs))
}

async fn create_api_key(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?
    };
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "update", &name)?;
    let ttl = expires_in(request.expires_in.as_ref())?;
    let claims = server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            if !account.can(Capability::ApiKey) {
                return Err(ApiError::Conflict(format!(
                    "account {name} lacks the apiKey capability"
                )));
            }
            if !account.enabled {
                return Err(ApiError::Conflict(format!("account {name} is disabled")));
            }
            let mut claims = Claims::new(name.clone(), TokenKind::ApiKey, ttl);
            claims.generation = account.generation;
            account.api_keys.push(TokenRecord {
                id: claims.jti.clone(),
                issued_at: claims.iat,
                expires_at: ttl.map(|_| claims.exp),
            });
            Ok(claims)
        })
        .await?;
    let token = server.inner.signer.sign(&claims);
    ok_audit(&auth, "create-token", "accounts", &name);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": claims.jti, "token": token, "expiresAt": ttl.map(|_| rfc3339(claims.exp))})),
    )
        .into_response())
}

async fn list_api_keys(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    let state = server
        .inner
        .state
        .read()
        .map_err(|_| ApiError::Internal("lock".into()))?;
    let items: Vec<Value> = state
        .accounts
        .get(&name)
        .map(|a| a.api_keys.iter().map(token_json).collect())
        .unwrap_or_default();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn delete_api_key(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((name, id)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    visible_account(&server, &auth, &name)?;
    require(&server, &auth, "accounts", "update", &name)?;
    server
        .change_state(|state| {
            let account = state
                .accounts
                .get_mut(&name)
                .ok_or_else(|| ApiError::NotFound(format!("account {name}")))?;
            let Some(pos) = account.api_keys.iter().position(|k| k.id == id) else {
                return Err(ApiError::NotFound(format!("token {id}")));
            };
            let record = account.api_keys.remove(pos);
            state
                .revoked
                .insert(record.id, record.expires_at.unwrap_or(i64::MAX / 2));
            Ok(())
        })
        .await?;
    ok_audit(&auth, "delete-token", "accounts", &name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------- projects

fn project_json(server: &Server, name: &str, project: &sluice_api::Project) -> Value {
    let mut value = serde_json::to_value(project).unwrap_or_default();
    let state = server.inner.state.read();
    if let Ok(state) = state
        && let Some(roles) = state.project_tokens.get(name)
    {
        let tokens: serde_json::Map<String, Value> = roles
            .iter()
            .map(|(role, list)| {
                (
                    role.clone(),
                    Value::Array(list.iter().map(|t| Value::String(t.id.clone())).collect()),
                )
            })
            .collect();
        value["status"]["tokens"] = Value::Object(tokens);
    }
    value
}

/// Cluster mode: mirrors a project's token ids into its `status.tokens`.
async fn publish_project_tokens(server: &Server, project: &str) {
    if let Backend::Cluster(cluster) = &server.inner.backend {
        let tokens = server
            .inner
            .state
            .read()
            .ok()
            .and_then(|s| s.project_tokens.get(project).cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(role, list)| (role, list.into_iter().map(|t| t.id).collect()))
            .collect();
        cluster.set_project_tokens(project, tokens).await;
    }
}

async fn list_projects(State(server): State<Server>, auth: Auth) -> Result<Response, ApiError> {
    let snapshot = server.inner.store.snapshot();
    let items: Vec<Value> = snapshot
        .projects
        .iter()
        .filter(|(name, _)| server.allowed(&auth.caller, "projects", "get", name))
        .map(|(name, p)| project_json(&server, name, p))
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

fn visible_project(
    server: &Server,
    auth: &Auth,
    name: &str,
) -> Result<sluice_api::Project, ApiError> {
    let snapshot = server.inner.store.snapshot();
    match snapshot.projects.get(name) {
        Some(p) if server.allowed(&auth.caller, "projects", "get", name) => Ok(p.clone()),
        _ => Err(ApiError::NotFound(format!("project {name}"))),
    }
}

async fn get_project(
    State(server): State<Server>,
    auth: Auth,
    UrlPath(name): UrlPath<String>,
) -> Result<Response, ApiError> {
    let project = visible_project(&server, &auth, &name)?;
    Ok(axum::Json(project_json(&server, &name, &project)).into_response())
}

async fn create_project_token(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((project, role)): UrlPath<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: TokenRequest = if body.is_empty() {
        TokenRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?
    };
    let p = visible_project(&server, &auth, &project)?;
    require(&server, &auth, "projects", "update", &project)?;
    if !p.spec.roles.iter().any(|r| r.name == role) {
        return Err(ApiError::NotFound(format!(
            "role {role} of project {project}"
        )));
    }
    let ttl = expires_in(request.expires_in.as_ref())?;
    let mut claims = Claims::new(
        project_role_subject(&project, &role),
        TokenKind::Project,
        ttl,
    );
    claims.project = Some(project.clone());
    claims.role = Some(role.clone());
    server
        .change_state(|state| {
            state
                .project_tokens
                .entry(project.clone())
                .or_default()
                .entry(role.clone())
                .or_default()
                .push(TokenRecord {
                    id: claims.jti.clone(),
                    issued_at: claims.iat,
                    expires_at: ttl.map(|_| claims.exp),
                });
            Ok(())
        })
        .await?;
    let token = server.inner.signer.sign(&claims);
    event(
        &server,
        &format!("projects/{project}"),
        project_ref(&p),
        "TokenCreated",
        &auth.caller.name,
        format!(
            "{} created token {} for role {role} of project {project}",
            auth.caller.name, claims.jti
        ),
    )
    .await;
    publish_project_tokens(&server, &project).await;
    ok_audit(&auth, "create-token", "projects", &project);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": claims.jti, "token": token, "expiresAt": ttl.map(|_| rfc3339(claims.exp))})),
    )
        .into_response())
}

async fn delete_project_token(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((project, role, jti)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let p = visible_project(&server, &auth, &project)?;
    require(&server, &auth, "projects", "update", &project)?;
    server
        .change_state(|state| {
            let list = state
                .project_tokens
                .get_mut(&project)
                .and_then(|roles| roles.get_mut(&role))
                .ok_or_else(|| ApiError::NotFound(format!("token {jti}")))?;
            let pos = list
                .iter()
                .position(|t| t.id == jti)
                .ok_or_else(|| ApiError::NotFound(format!("token {jti}")))?;
            let record = list.remove(pos);
            state
                .revoked
                .insert(record.id, record.expires_at.unwrap_or(i64::MAX / 2));
            Ok(())
        })
        .await?;
    event(
        &server,
        &format!("projects/{project}"),
        project_ref(&p),
        "TokenRevoked",
        &auth.caller.name,
        format!(
            "{} revoked token {jti} of role {role} of project {project}",
            auth.caller.name
        ),
    )
    .await;
    publish_project_tokens(&server, &project).await;
    ok_audit(&auth, "delete-token", "projects", &project);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------- stagesets

/// A StageSet as the API returns it: credentials in source URLs redacted.
fn stageset_json(stageset: &sluice_api::StageSet) -> Value {
    let mut value = serde_json::to_value(stageset).unwrap_or_default();
    if let Some(stages) = value
        .pointer_mut("/spec/stages")
        .and_then(Value::as_array_mut)
    {
        for stage in stages {
            for kind in ["git", "http"] {
                if let Some(url) = stage.pointer_mut(&format!("/source/{kind}/url"))
                    && let Some(text) = url.as_str()
                {
                    *url = Value::String(redact_url(text));
                }
            }
        }
    }
    value
}

/// `https://user:secret@host/x` → `https://host/x`; anything unparsable is masked whole.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            parsed.to_string()
        }
        // scp-like git@host:path has no secret in it.
        Err(_) if !url.contains("://") => url.to_owned(),
        Err(_) => crate::redact::MASK.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "continue")]
    continue_: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

fn decode_continue(token: &str) -> Result<String, ApiError> {
    use base64::Engine;
    let bad = || ApiError::BadRequest("invalid continue token".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    value["after"].as_str().map(str::to_owned).ok_or_else(bad)
}

fn encode_continue(after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"after": after}).to_string())
}

async fn list_stagesets(
    State(server): State<Server>,
    auth: Auth,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = match query.limit.as_deref() {
        None | Some("") => MAX_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => {
                return Err(ApiError::BadRequest(
                    "limit must be a positive integer".into(),
                ));
            }
        },
    };
    let snapshot = server.inner.store.snapshot();
    let visible = server.visible_positions(&auth.caller, &snapshot);
    let start = match query.continue_.as_deref().filter(|c| !c.is_empty()) {
        Some(token) => {
            let after = decode_continue(token)?;
            let pos = snapshot.position_after(&after) as u32;
            visible.partition_point(|&i| i < pos)
        }
        None => 0,
    };
    let mut items = Vec::with_capacity(limit.min(visible.len()));
    let mut last = None;
    let mut next = None;
    for &i in &visible[start..] {
        let entry = &snapshot.stagesets[i as usize];
        if let Some(ns) = query.namespace.as_deref()
            && entry.stageset.metadata.namespace.as_deref() != Some(ns)
        {
            continue;
        }
        if items.len() == limit {
            next = last.map(encode_continue);
            break;
        }
        items.push(stageset_json(&entry.stageset));
        last = Some(entry.key.as_str());
    }
    Ok(axum::Json(json!({"items": items, "metadata": {"continue": next}})).into_response())
}

/// The StageSet `namespace/name` if the caller may see it; the same 404 otherwise.
fn visible_stageset(
    server: &Server,
    auth: &Auth,
    namespace: &str,
    name: &str,
) -> Result<crate::store::Entry, ApiError> {
    let snapshot = server.inner.store.snapshot();
    let key = format!("{namespace}/{name}");
    match snapshot.get(&key) {
        Some(e) if server.allowed(&auth.caller, "stagesets", "get", &e.object) => Ok(e.clone()),
        _ => Err(ApiError::NotFound(format!("stageset {key}"))),
    }
}

async fn get_stageset(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let snapshot = server.inner.store.snapshot();
    let key = format!("{namespace}/{name}");
    match snapshot.get(&key) {
        Some(e) if server.allowed(&auth.caller, "stagesets", "get", &e.object) => {
            Ok(axum::Json(stageset_json(&e.stageset)).into_response())
        }
        _ => Err(ApiError::NotFound(format!("stageset {key}"))),
    }
}

async fn get_stages(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    let statuses = entry
        .stageset
        .status
        .as_ref()
        .map(|s| s.stages.clone())
        .unwrap_or_default();
    let annotations = entry
        .stageset
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    let items: Vec<Value> = entry
        .stageset
        .spec
        .stages
        .iter()
        .map(|stage| {
            let status = statuses.iter().find(|s| s.name == stage.name);
            json!({
                "name": stage.name,
                "status": status,
                "approval": annotations.get(&format!("{GATE_ANNOTATION_PREFIX}{}", stage.name)),
            })
        })
        .collect();
    Ok(axum::Json(json!({"items": items})).into_response())
}

async fn render_for(
    server: &Server,
    entry: &crate::store::Entry,
    stage_name: &str,
) -> Result<crate::render::Rendered, ApiError> {
    let stage = entry
        .stageset
        .spec
        .stages
        .iter()
        .find(|s| s.name == stage_name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("stage {stage_name}")))?;
    let namespace = entry
        .stageset
        .metadata
        .namespace
        .clone()
        .unwrap_or_default();
    let call = RenderCall {
        stage,
        release_name: entry.stageset.metadata.name.clone().unwrap_or_default(),
        namespace: entry
            .stageset
            .spec
            .target_namespace
            .clone()
            .unwrap_or(namespace),
        source: None,
    };
    let _permit = server
        .inner
        .renders
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.inner.config.renderer.render(&call))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            crate::render::RenderError::Stage(message) => {
                ApiError::Conflict(format!("stage {stage_name} does not render: {message}"))
            }
            other => ApiError::Unavailable(other.to_string()),
        })
}

async fn get_manifests(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name, stage)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    let mut rendered = render_for(&server, &entry, &stage).await?;
    for object in &mut rendered.objects {
        crate::redact::redact(object);
    }
    Ok(axum::Json(json!({
        "revision": rendered.revision,
        "engine": rendered.engine,
        "objects": rendered.objects,
    }))
    .into_response())
}

async fn get_diff(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name, stage)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    let rendered = render_for(&server, &entry, &stage).await?;
    let snapshot = server.inner.store.snapshot();
    let default_ns = entry
        .stageset
        .spec
        .target_namespace
        .clone()
        .or(entry.stageset.metadata.namespace.clone())
        .unwrap_or_default();
    let mut items = Vec::new();
    for object in rendered.objects {
        let mut key_source = object.clone();
        if key_source["metadata"]["namespace"].is_null() && !is_cluster_scoped(&object) {
            key_source["metadata"]["namespace"] = Value::String(default_ns.clone());
        }
        let key = crate::store::live_key(&key_source);
        let mut live = match &server.inner.backend {
            Backend::Local { .. } => snapshot.live.get(&key).cloned(),
            Backend::Cluster(_) => {
                let s = server.clone();
                tokio::task::spawn_blocking(move || match &s.inner.backend {
                    Backend::Cluster(cluster) => cluster.live_object(&key_source),
                    Backend::Local { .. } => Ok(None),
                })
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??
            }
        };
        let mut desired = Some(object);
        let change = match &live {
            None => "added",
            Some(l) if subset(desired.as_ref().unwrap_or(&Value::Null), l) => "unchanged",
            Some(_) => "modified",
        };
        crate::redact::redact_pair(&mut desired, &mut live);
        items.push(json!({"key": key, "change": change, "desired": desired, "live": live}));
    }
    Ok(axum::Json(json!({"revision": rendered.revision, "items": items})).into_response())
}

fn is_cluster_scoped(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some(
            "Namespace"
                | "CustomResourceDefinition"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "PersistentVolume"
                | "StorageClass"
                | "PriorityClass"
        )
    )
}

/// Whether every field `desired` sets has the same value in `live` (server-side apply only
/// owns what it sets; defaults the API server adds are not drift).
fn subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, v)| l.get(k).is_some_and(|lv| subset(v, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| subset(a, b))
        }
        _ => desired == live,
    }
}

async fn request_reconcile(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    require(&server, &auth, "stagesets", "reconcile", &entry.object)?;
    let at = now_rfc3339();
    reconcile(&server, &entry, &auth.caller.name, &at).await?;
    ok_audit(&auth, "reconcile", "stagesets", &entry.object);
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"requestedAt": at}))).into_response())
}

async fn reconcile(
    server: &Server,
    entry: &crate::store::Entry,
    actor: &str,
    at: &str,
) -> Result<(), ApiError> {
    let key = &entry.key;
    annotate_stageset(server, key, RECONCILE_ANNOTATION, at).await?;
    event(
        server,
        &format!("stagesets/{key}"),
        stageset_ref(&entry.stageset),
        "ReconcileRequested",
        actor,
        format!("{actor} requested reconcile of stageset {key}"),
    )
    .await;
    Ok(())
}

async fn approve_gate(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name, stage)): UrlPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    if !entry.stageset.spec.stages.iter().any(|s| s.name == stage) {
        return Err(ApiError::NotFound(format!("stage {stage}")));
    }
    require(&server, &auth, "gates", "approve", &entry.object)?;
    let at = now_rfc3339();
    let value = format!("approved by {} at {at}", auth.caller.name);
    annotate_stageset(
        &server,
        &entry.key,
        &format!("{GATE_ANNOTATION_PREFIX}{stage}"),
        &value,
    )
    .await?;
    event(
        &server,
        &format!("stagesets/{}", entry.key),
        stageset_ref(&entry.stageset),
        "GateApproved",
        &auth.caller.name,
        format!(
            "{} approved the gate of stage {stage} of stageset {}",
            auth.caller.name, entry.key
        ),
    )
    .await;
    ok_audit(&auth, "approve", "gates", &entry.object);
    Ok((StatusCode::ACCEPTED, axum::Json(json!({"approvedAt": at}))).into_response())
}

async fn get_events(
    State(server): State<Server>,
    auth: Auth,
    UrlPath((namespace, name)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = visible_stageset(&server, &auth, &namespace, &name)?;
    require(&server, &auth, "logs", "get", &entry.object)?;
    let items = server
        .inner
        .store
        .events(&format!("stagesets/{}", entry.key));
    Ok(axum::Json(json!({"items": items})).into_response())
}

// ---------------------------------------------------------------- webhooks and docs

async fn webhook(
    State(server): State<Server>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    use crate::webhook::{WebhookError, matching_stagesets, parse_push, provider, verify};
    let remote = remote(request.extensions());
    let from = remote.map(|r| r.to_string()).unwrap_or_default();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let provider = provider(header).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let limit = server.inner.config.webhook_max_body;
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| ApiError::TooLarge(limit))?;
    if let Err(e) = verify(&server.inner.config.webhook, provider, header, &body) {
        return Err(match e {
            WebhookError::BadSignature => {
                tracing::warn!(security = 3, CWE = 345, provider = provider.name(), remote = %from, "webhook refused: signature does not verify");
                ApiError::Unauthenticated(e.to_string())
            }
            other => ApiError::BadRequest(other.to_string()),
        });
    }
    if provider == crate::webhook::Provider::GitHub
        && header("x-github-event").as_deref() == Some("ping")
    {
        return Ok(axum::Json(json!({"matched": 0, "message": "pong"})).into_response());
    }
    let push = parse_push(provider, &body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let matched = matching_stagesets(&server.inner.store.snapshot(), &push);
    let actor = format!("webhook:{}", provider.name());
    if !matched.is_empty() {
        // All or nothing: a refused webhook is retried by its sender, so none of its
        // requests may be queued.
        let permits = server
            .inner
            .webhook_queue
            .try_reserve_many(matched.len())
            .map_err(|_| {
                tracing::warn!(security = 2, CWE = 400, remote = %from, "webhook queue full");
                ApiError::Unavailable("webhook queue full; retry later".into())
            })?;
        for (permit, key) in permits.zip(&matched) {
            permit.send((key.clone(), actor.clone()));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"matched": matched.len()})),
    )
        .into_response())
}

/// Carries out queued webhook reconcile requests at a bounded rate.
async fn webhook_worker(server: Server, mut rx: tokio::sync::mpsc::Receiver<(String, String)>) {
    let per_request = Duration::from_secs(1) / server.inner.config.webhook_rate.max(1);
    while let Some((key, actor)) = rx.recv().await {
        let at = now_rfc3339();
        let Some(entry) = server.inner.store.snapshot().get(&key).cloned() else {
            continue;
        };
        if let Err(e) = reconcile(&server, &entry, &actor, &at).await {
            tracing::warn!(stageset = %key, error = %e, "webhook reconcile request failed");
            continue;
        }
        audit(&AuditRecord {
            actor: &actor,
            action: "reconcile",
            resource: "stagesets",
            object: &key,
            remote: None,
            result: "success",
        });
        tokio::time::sleep(per_request).await;
    }
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
