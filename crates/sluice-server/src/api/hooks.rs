//! Webhooks from Git hosts and the OpenAPI document.

use super::*;

pub(super) async fn webhook(
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
pub(super) async fn webhook_worker(
    server: Server,
    mut rx: tokio::sync::mpsc::Receiver<(String, String)>,
) {
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

pub(super) async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}
