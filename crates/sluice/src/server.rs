//! `sluice server`, `sluice repo-server` and `sluice rbac can`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use sluice_server::oidc::OidcConfig;
use sluice_server::render::Renderer;
use sluice_server::tls::{Identity, MinVersion};
use sluice_server::{Server, ServerConfig};
use sluice_stage::plan::PlanOptions;

/// Where the certificate comes from and which TLS versions are spoken.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain (default: a self-signed certificate generated at start).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Lowest TLS version accepted: 1.2 or 1.3.
    #[arg(long, default_value = "1.2")]
    pub tls_min_version: MinVersion,
    /// Serve plain HTTP (only behind something that terminates TLS, or for a local try).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure: bool,
}

/// `sluice server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on (`:8443` means every interface).
    #[arg(long, default_value = ":8443")]
    pub listen: String,
    /// TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Serve the StageSets and Projects of this directory's YAML files, keeping accounts,
    /// the signing key and revocations in a 0600 state file inside it (no cluster needed).
    /// Without it, the server reads the cluster (in-cluster or KUBECONFIG).
    #[arg(long)]
    pub local: Option<PathBuf>,
    /// Cluster mode: the namespace of the server's state Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    pub namespace: String,
    /// Flux sources and local stand-ins for in-process rendering, as for `sluice plan
    /// --sources` (default: DIR/sources if it exists, else DIR).
    #[arg(long)]
    pub sources: Option<PathBuf>,
    /// RBAC policy CSV (Argo CD format); a malformed line stops the server at start.
    #[arg(long)]
    pub rbac_policy: Option<PathBuf>,
    /// Role every authenticated caller has besides their own (default: none, deny).
    #[arg(long)]
    pub rbac_default_role: Option<String>,
    /// Lifetime of login sessions (e.g. 24h, 30m).
    #[arg(long, default_value = "24h")]
    pub session_ttl: String,
    /// bcrypt cost of new password hashes (4..=31).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
    /// Password checks running at once (default: half the CPUs); more get 429.
    #[arg(long)]
    pub max_concurrent_logins: Option<usize>,
    /// OIDC issuer URL: enables SSO with its ID tokens.
    #[arg(long, requires = "oidc_client_id")]
    pub oidc_issuer: Option<String>,
    /// OIDC client id: the audience ID tokens must carry.
    #[arg(long)]
    pub oidc_client_id: Option<String>,
    /// JWKS URL (default: from the issuer's discovery document).
    #[arg(long)]
    pub oidc_jwks_url: Option<String>,
    /// The ID token claim listing the user's groups.
    #[arg(long, default_value = "groups")]
    pub oidc_groups_claim: String,
    /// Shortest time between two JWKS fetches caused by an unknown key id.
    #[arg(long, default_value = "10s")]
    pub oidc_key_refresh_interval: String,
    /// Extra CA certificates (PEM) for the identity provider.
    #[arg(long)]
    pub oidc_ca_file: Option<PathBuf>,
    /// GitHub webhook secret (file).
    #[arg(long)]
    pub webhook_github_secret_file: Option<PathBuf>,
    /// GitLab webhook token (file).
    #[arg(long)]
    pub webhook_gitlab_secret_file: Option<PathBuf>,
    /// Key of the generic X-Sluice-Signature HMAC header (file).
    #[arg(long)]
    pub webhook_generic_secret_file: Option<PathBuf>,
    /// Largest webhook body in bytes (larger: 413).
    #[arg(long, default_value_t = 1 << 20)]
    pub webhook_max_body: usize,
    /// Reconcile requests from webhooks waiting at most (a webhook that does not fit: 503).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_queue: u32,
    /// Reconcile requests from webhooks carried out per second at most.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub webhook_rate: u32,
    /// Where stages are rendered.
    #[command(flatten)]
    pub repo: RepoServerClientArgs,
    /// Source cache for in-process rendering.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Tool locations and the sandbox for in-process rendering.
    #[command(flatten)]
    pub tools: crate::cli::ToolArgs,
}

/// How to reach the repo server (shared by `server` and `controller`).
#[derive(Debug, Clone, Args)]
pub struct RepoServerClientArgs {
    /// Repo server URL, or `in-process` to render in this process.
    #[arg(long, default_value = "in-process")]
    pub repo_server: String,
    /// CA that signed the repo server's certificate.
    #[arg(long)]
    pub repo_server_ca: Option<PathBuf>,
    /// Client certificate presented to the repo server.
    #[arg(long)]
    pub repo_server_client_cert: Option<PathBuf>,
    /// Key of --repo-server-client-cert.
    #[arg(long)]
    pub repo_server_client_key: Option<PathBuf>,
}

impl RepoServerClientArgs {
    /// The repo server client; `None` for in-process rendering.
    pub fn remote(&self) -> anyhow::Result<Option<Renderer>> {
        if self.repo_server == "in-process" {
            return Ok(None);
        }
        let (Some(ca), Some(cert), Some(key)) = (
            &self.repo_server_ca,
            &self.repo_server_client_cert,
            &self.repo_server_client_key,
        ) else {
            anyhow::bail!(
                "--repo-server {}: the repo server speaks mutual TLS; give --repo-server-ca, --repo-server-client-cert and --repo-server-client-key",
                self.repo_server
            );
        };
        Ok(Some(Renderer::remote(&self.repo_server, ca, cert, key)?))
    }
}

/// `sluice repo-server`.
#[derive(Debug, Args)]
pub struct RepoServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = ":8081")]
    pub listen: String,
    /// TLS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// CA whose client certificates are accepted (required unless --insecure).
    #[arg(long, required_unless_present = "insecure")]
    pub client_ca: Option<PathBuf>,
    /// Source cache.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Flux sources and local stand-ins, as for `sluice plan --sources`.
    #[arg(long)]
    pub sources: Option<PathBuf>,
    /// Renders running at once.
    #[arg(long, default_value_t = 2)]
    pub parallelism: usize,
    /// Tool locations and the sandbox.
    #[command(flatten)]
    pub tools: crate::cli::ToolArgs,
}

/// `sluice rbac`.
#[derive(Debug, Subcommand)]
pub enum RbacCommand {
    /// Would SUBJECT be allowed ACTION on RESOURCE OBJECT? Prints yes or no (exit 0 or 1).
    Can(RbacCanArgs),
}

/// `sluice rbac can`.
#[derive(Debug, Args)]
pub struct RbacCanArgs {
    /// A user, group or role.
    pub subject: String,
    /// get, create, update, delete, reconcile, approve.
    pub action: String,
    /// stagesets, projects, accounts, logs, gates.
    pub resource: String,
    /// `<project>/<namespace>/<name>`, a project or an account name.
    pub object: String,
    /// The policy CSV.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Extra groups of the subject (repeatable).
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// The server's default role.
    #[arg(long)]
    pub default_role: Option<String>,
}

fn read_secret(path: &Option<PathBuf>) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
    anyhow::ensure!(!secret.is_empty(), "{}: empty secret", path.display());
    Ok(Some(secret))
}

fn read_policy(path: Option<&Path>) -> anyhow::Result<Vec<sluice_server::rbac::Rule>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Ok(sluice_server::rbac::parse_policy(
        &path.display().to_string(),
        &text,
    )?)
}

fn tls_config(
    tls: &TlsArgs,
    client_ca: Option<&Path>,
) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    if tls.insecure {
        tracing::warn!(security = 3, CWE = 319, "serving plain HTTP (--insecure)");
        return Ok(None);
    }
    let identity = match (&tls.tls_cert, &tls.tls_key) {
        (Some(cert), Some(key)) => Identity::from_files(cert, key)?,
        _ => {
            let (identity, pem) =
                Identity::self_signed(&["localhost".to_owned(), "127.0.0.1".to_owned()])?;
            tracing::warn!(
                "no --tls-cert: serving a self-signed certificate generated now (trust it explicitly):\n{pem}"
            );
            identity
        }
    };
    Ok(Some(sluice_server::tls::server_config(
        identity,
        tls.tls_min_version,
        client_ca,
    )?))
}

fn plan_options(
    cache_dir: &Option<PathBuf>,
    sources: Option<PathBuf>,
    tools: &crate::cli::ToolArgs,
) -> anyhow::Result<PlanOptions> {
    let base_dir = sources.clone().unwrap_or_default();
    Ok(PlanOptions {
        cache_dir: match cache_dir {
            Some(dir) => dir.clone(),
            None => crate::build::default_cache_dir()?,
        },
        sources_dir: sources,
        base_dir,
        tools: crate::build::tool_paths(tools),
        sandbox: crate::build::sandbox_policy(tools),
    })
}

/// Runs `sluice server` until SIGINT or SIGTERM.
pub fn run_server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let address = crate::controller::listen_address(&args.listen)?;
    let renderer = if let Some(remote) = args.repo.remote()? {
        remote
    } else {
        let sources = match (&args.sources, &args.local) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(dir)) => {
                let sub = dir.join("sources");
                Some(if sub.is_dir() { sub } else { dir.clone() })
            }
            (None, None) => None,
        };
        Renderer::InProcess(Box::new(plan_options(
            &args.cache_dir,
            sources,
            &args.tools,
        )?))
    };
    let mut config = ServerConfig::new(renderer);
    config.session_ttl = Duration::from_millis(
        sluice_stage::load::parse_duration_ms(&args.session_ttl)
            .filter(|ms| *ms >= 1000)
            .with_context(|| {
                format!(
                    "--session-ttl {:?}: expected e.g. 24h or 30m",
                    args.session_ttl
                )
            })?,
    );
    config.bcrypt_cost = args.bcrypt_cost;
    if let Some(n) = args.max_concurrent_logins {
        anyhow::ensure!(n >= 1, "--max-concurrent-logins must be at least 1");
        config.max_concurrent_logins = n;
    }
    config.policy = read_policy(args.rbac_policy.as_deref())?;
    config.default_role = args.rbac_default_role.clone();
    config.webhook.github_secret = read_secret(&args.webhook_github_secret_file)?;
    config.webhook.gitlab_secret = read_secret(&args.webhook_gitlab_secret_file)?;
    config.webhook.generic_secret = read_secret(&args.webhook_generic_secret_file)?;
    config.webhook_max_body = args.webhook_max_body;
    config.webhook_queue = args.webhook_queue as usize;
    config.webhook_rate = args.webhook_rate;
    if let (Some(issuer), Some(client_id)) = (&args.oidc_issuer, &args.oidc_client_id) {
        config.oidc = Some(OidcConfig {
            issuer: issuer.clone(),
            audience: client_id.clone(),
            jwks_url: args.oidc_jwks_url.clone(),
            groups_claim: args.oidc_groups_claim.clone(),
            ca_file: args.oidc_ca_file.clone(),
            cache_ttl: Duration::from_secs(3600),
            min_refresh: Duration::from_millis(
                sluice_stage::load::parse_duration_ms(&args.oidc_key_refresh_interval)
                    .with_context(|| {
                        format!(
                            "--oidc-key-refresh-interval {:?}: expected e.g. 10s",
                            args.oidc_key_refresh_interval
                        )
                    })?,
            ),
        });
    }
    let tls = tls_config(&args.tls, None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
                let (server, serving) = match &args.local {
            Some(dir) => (
                Server::open_local(dir, config).await?,
                dir.display().to_string(),
            ),
            None => {
                let kube_config = kube::Config::infer()
                    .await
                    .context("finding the cluster (in-cluster ServiceAccount or KUBECONFIG); use --local DIR to run without one")?;
                (
                    Server::open_cluster(kube_config, &args.namespace, config).await?,
                    "the Kubernetes API".to_owned(),
                )
            }
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        tracing::info!(
            address = %listener.local_addr()?,
            tls = tls.is_some(),
                        serving = %serving,
            stagesets = server.store().snapshot().stagesets.len(),
            "sluice server listening"
        );
        sluice_server::serve::serve(
            listener,
            tls,
            server.router(),
            crate::controller::shutdown_signal(),
        )
        .await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `sluice repo-server` until SIGINT or SIGTERM.
pub fn run_repo_server(args: RepoServerArgs) -> anyhow::Result<ExitCode> {
    let address = crate::controller::listen_address(&args.listen)?;
    let options = plan_options(&args.cache_dir, args.sources.clone(), &args.tools)?;
    let tls = tls_config(&args.tls, args.client_ca.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        tracing::info!(address = %listener.local_addr()?, mutual_tls = tls.is_some(), "sluice repo-server listening");
        sluice_server::serve::serve(
            listener,
            tls,
            sluice_server::repo_server::router(options, args.parallelism),
            crate::controller::shutdown_signal(),
        )
        .await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `sluice rbac can`: prints yes or no.
pub fn run_rbac(command: RbacCommand) -> anyhow::Result<ExitCode> {
    let RbacCommand::Can(args) = command;
    let rules = read_policy(args.policy.as_deref())?;
    anyhow::ensure!(
        sluice_server::rbac::RESOURCES.contains(&args.resource.as_str()),
        "unknown resource {:?} (one of {})",
        args.resource,
        sluice_server::rbac::RESOURCES.join(", ")
    );
    anyhow::ensure!(
        sluice_server::rbac::ACTIONS.contains(&args.action.as_str()),
        "unknown action {:?} (one of {})",
        args.action,
        sluice_server::rbac::ACTIONS.join(", ")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")?;
    let rbac = runtime.block_on(sluice_server::rbac::Rbac::new(rules, args.default_role))?;
    let mut subjects = vec![args.subject];
    subjects.extend(args.groups);
    let yes = rbac.can(&subjects, &args.resource, &args.action, &args.object);
    println!("{}", if yes { "yes" } else { "no" });
    Ok(if yes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
