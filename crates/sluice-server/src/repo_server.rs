//! `sluice repo-server`: the render API behind mutual TLS. It holds no Kubernetes
//! credentials; a caller without a client certificate signed by the configured CA never gets
//! past the handshake.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_stage::plan::PlanOptions;

use crate::error::error_body;
use crate::render::{RenderCall, render_here};

/// Largest render request accepted.
pub const MAX_REQUEST: usize = 1 << 20;

struct RepoState {
    options: PlanOptions,
    renders: tokio::sync::Semaphore,
}

/// The repo server's routes; `concurrency` renders run at once, the rest wait.
pub fn router(options: PlanOptions, concurrency: usize) -> Router {
    let state = Arc::new(RepoState {
        options,
        renders: tokio::sync::Semaphore::new(concurrency.max(1)),
    });
    Router::new()
        .route("/api/v1/render", post(render))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(error_body(status, message))).into_response()
}

async fn render(State(state): State<Arc<RepoState>>, body: Bytes) -> Response {
    let call: RenderCall = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid render request: {e}"),
            );
        }
    };
    let Ok(_permit) = state.renders.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let options = state.options.clone();
    match tokio::task::spawn_blocking(move || render_here(&call, &options)).await {
        Ok(Ok(rendered)) => axum::Json(rendered).into_response(),
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "render task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
