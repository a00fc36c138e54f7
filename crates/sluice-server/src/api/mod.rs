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

mod accounts;
mod hooks;
mod projects;
mod stagesets;

use accounts::*;
use hooks::*;
use projects::*;
use stagesets::*;

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
    /// Recent renders for the manifests and diff endpoints.
    rendered: RenderCache,
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
                rendered: RenderCache::default(),
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
            .route("/readyz", get(readyz))
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
                // An identity provider must not be able to speak for a local account or a
                // built-in name: a user or group called `admin`, `role:admin` or `proj:…`
                // would otherwise inherit its grants.
                let reserved = |name: &str| {
                    name.starts_with("role:")
                        || name.starts_with("proj:")
                        || self
                            .inner
                            .state
                            .read()
                            .map(|s| s.accounts.contains_key(name))
                            .unwrap_or(true)
                };
                if identity.subject.trim().is_empty()
                    || identity.subject.chars().any(char::is_control)
                    || reserved(&identity.subject)
                {
                    tracing::warn!(
                        security = 3,
                        CWE = 290,
                        subject = %identity.subject.escape_debug(),
                        "OIDC token refused: its subject names a local account or a built-in role"
                    );
                    return Err(TokenError::Issuer);
                }
                let mut subjects = vec![identity.subject.clone()];
                for group in identity.groups {
                    if reserved(&group) {
                        tracing::warn!(
                            security = 3,
                            CWE = 290,
                            group = %group.escape_debug(),
                            "OIDC group ignored: it names a local account or a built-in role"
                        );
                    } else {
                        subjects.push(group);
                    }
                }
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

    /// The current state, for reading.
    fn state(&self) -> Result<std::sync::RwLockReadGuard<'_, ServerState>, ApiError> {
        self.inner
            .state
            .read()
            .map_err(|_| ApiError::Internal("state lock poisoned".into()))
    }

    /// Waits out `name`'s brute-force delay, then takes one of the bounded password-check
    /// slots (429 when none is free).
    async fn password_check_slot(
        &self,
        name: &str,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, ApiError> {
        let delay = self.inner.failures.delay(name);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.inner.logins.try_acquire().map_err(|_| {
            ApiError::TooManyRequests("too many password checks in progress; retry shortly".into())
        })
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

/// Ready once the served objects are complete (cluster mode: after the first full list).
async fn readyz(State(server): State<Server>) -> Response {
    if server.inner.store.is_ready() {
        "ok".into_response()
    } else {
        ApiError::Unavailable("StageSets and Projects are still being listed".into())
            .into_response()
    }
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
