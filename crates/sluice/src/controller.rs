//! `sluice controller`: the StageSet control loop, with `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sluice_controller::metrics::Metrics;
use sluice_controller::run::{RunOptions, run as run_loop};
use sluice_stage::plan::PlanOptions;

/// `sluice controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The controller's namespace (stage inventories are kept there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "sluice-system")]
    pub namespace: String,
    /// Address of /metrics, /healthz and /readyz (`:8080` means every interface).
    #[arg(long, default_value = ":8080")]
    pub metrics_addr: String,
    /// Source cache (default: $XDG_CACHE_HOME/sluice or ~/.cache/sluice).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Tool locations and the sandbox (as for `sluice build`).
    #[command(flatten)]
    pub tools: crate::cli::ToolArgs,
    /// Where stages are rendered (a repo server over mutual TLS, or in this process).
    #[command(flatten)]
    pub repo: crate::server::RepoServerClientArgs,
    /// Reconcile only while holding the `sluice-controller` Lease (run several replicas).
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease (default: --namespace).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
}

pub(crate) fn listen_address(text: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    full.parse()
        .with_context(|| format!("{text:?}: expected HOST:PORT or :PORT"))
}

/// Runs the controller until SIGINT or SIGTERM.
pub fn run(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    let address = listen_address(&args.metrics_addr)?;
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => crate::build::default_cache_dir()?,
    };
    let renderer = args.repo.remote()?.map(|remote| {
        std::sync::Arc::new(sluice_server::render::RemoteStageRenderer(remote))
            as std::sync::Arc<dyn sluice_controller::reconcile::StageRenderer>
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = kube::Config::infer()
            .await
            .context("finding the cluster (in-cluster ServiceAccount or KUBECONFIG)")?;
        let metrics = Arc::new(Metrics::default());
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))?;
        tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
        let exposed = metrics.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let exposed = exposed.clone();
                    async move {
                        (
                            [(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            exposed.render(),
                        )
                    }
                }),
            )
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .route("/readyz", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
        let lease = args
            .leader_elect
            .then(|| sluice_controller::leader::LeaseConfig {
                namespace: args
                    .leader_election_namespace
                    .clone()
                    .unwrap_or_else(|| args.namespace.clone()),
                name: "sluice-controller".into(),
                identity: args.identity.clone().unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        std::env::var("HOSTNAME").unwrap_or_else(|_| "sluice".into()),
                        std::process::id()
                    )
                }),
                duration: std::time::Duration::from_secs(15),
            });
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        if let Some(lease) = &lease {
            let client = kube::Client::try_from(config.clone()).context("client")?;
            tokio::select! {
                () = sluice_controller::leader::acquire(&client, lease) => {}
                () = shutdown_signal() => return Ok(ExitCode::SUCCESS),
            }
            let lease = lease.clone();
            tokio::spawn(async move {
                sluice_controller::leader::hold(&client, &lease).await;
                let _ = lost_tx.send(());
            });
        }
        let options = RunOptions {
            plan: PlanOptions {
                cache_dir,
                sources_dir: None,
                base_dir: std::env::current_dir().unwrap_or_default(),
                tools: crate::build::tool_paths(&args.tools),
                sandbox: crate::build::sandbox_policy(&args.tools),
            },
            namespace: args.namespace,
            metrics,
            renderer,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<bool>();
        tokio::spawn(async move {
            let leadership_lost = tokio::select! {
                () = shutdown_signal() => false,
                Ok(()) = lost_rx => true,
            };
            let _ = stop_tx.send(leadership_lost);
        });
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let why = tokio::spawn(async move {
            let lost = stop_rx.await.unwrap_or(false);
            let _ = stopped_tx.send(());
            lost
        });
        run_loop(config, options, async {
            let _ = stopped_rx.await;
        })
        .await
        .context("controller")?;
        if why.await.unwrap_or(false) {
            // Another replica leads now; exiting lets the pod restart as a candidate.
            tracing::error!("leadership lost; stopping");
            return Ok(ExitCode::FAILURE);
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
