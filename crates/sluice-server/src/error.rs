//! API errors: one JSON shape, one status code per kind.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What went wrong with a request, as the caller sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated but not allowed (403).
    #[error("permission denied: {0}")]
    Forbidden(String),
    /// The object does not exist, or the caller may not see it (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body is over the limit (413).
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// Slow down (429).
    #[error("{0}")]
    TooManyRequests(String),
    /// The server cannot take more work now (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unreachable dependency (500); the detail is logged, never returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The error body every endpoint returns: `{"error": {"code", "reason", "message"}}`.
pub fn error_body(status: StatusCode, message: &str) -> serde_json::Value {
    let reason = status
        .canonical_reason()
        .unwrap_or("Error")
        .replace([' ', '-'], "");
    json!({"error": {"code": status.as_u16(), "reason": reason, "message": message}})
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let status = self.status();
        let mut response =
            (status, axum::Json(error_body(status, &self.to_string()))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"sluice\""),
            );
        }
        response
    }
}
