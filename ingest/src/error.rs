//! The one error type of the HTTP API.
//!
//! Policy: every error answers JSON `{"error": "..."}`. Errors a client can
//! fix carry a message meant for them (the Code::Stats wording where plugins
//! match on it). Everything else is a 5xx whose details are logged by the
//! `log_server_errors` middleware and never shown to the client.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("You must be authenticated")]
    Unauthenticated,
    /// The WakaTime API's refusal of a missing or unknown key.
    #[error("Unauthorized: a valid API key is required")]
    InvalidApiKey,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("request body not received in time")]
    RequestTimeout,
    #[error("too many pulses, retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{message}")]
    Unavailable {
        message: &'static str,
        retry_after_secs: u64,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The details of a 5xx, for the logging middleware to find.
#[derive(Clone, Debug)]
pub struct ErrorDetail(pub String);

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        AppError::Internal(e.to_string())
    }

    /// The metrics' label for this refusal (`codestats_*_rejected_total`).
    pub fn reason(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "invalid",
            AppError::Unauthenticated | AppError::InvalidApiKey => "unauthenticated",
            AppError::NotFound(_) => "not_found",
            AppError::PayloadTooLarge { .. } => "too_large",
            AppError::RequestTimeout => "timeout",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable { .. } => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthenticated => StatusCode::FORBIDDEN,
            AppError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Why the log refused a pulse, as the client hears it (the pulse API and
/// `/healthz`).
impl From<crate::log::AppendError> for AppError {
    fn from(e: crate::log::AppendError) -> Self {
        use crate::log::AppendError;
        match e {
            AppendError::Full => AppError::Unavailable {
                message: "the ingest log is full, try again later",
                retry_after_secs: 30,
            },
            AppendError::Failed => AppError::Unavailable {
                message: "the ingest log cannot be written, try again later",
                retry_after_secs: 30,
            },
            AppendError::Overloaded => AppError::Unavailable {
                message: "too many pulses waiting to be stored, try again later",
                retry_after_secs: 5,
            },
        }
    }
}

impl From<sql::Error> for AppError {
    fn from(e: sql::Error) -> Self {
        if e.is_transient() {
            AppError::Unavailable {
                message: "storage is unavailable, try again later",
                retry_after_secs: 5,
            }
        } else {
            AppError::Internal(e.to_string())
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            AppError::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        };
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        match &self {
            AppError::RateLimited { retry_after_secs }
            | AppError::Unavailable {
                retry_after_secs, ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            AppError::Internal(detail) => {
                response
                    .extensions_mut()
                    .insert(ErrorDetail(detail.clone()));
            }
            _ => {}
        }
        response
    }
}

/// Logs every 5xx answer with its details, once, in one place.
pub async fn log_server_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    // The route, not the path: a path can hold a secret (a reset link).
    let path = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "(no route)".to_owned());
    let response = next.run(request).await;
    if response.status().is_server_error() {
        let detail = response
            .extensions()
            .get::<ErrorDetail>()
            .map(|d| d.0.as_str())
            .unwrap_or("");
        tracing::error!(%method, %path, status = response.status().as_u16(), detail, "request failed");
    }
    response
}

/// A JSON 404 for every path no route serves.
pub async fn not_found() -> AppError {
    AppError::NotFound("not found")
}

/// A JSON 405 for a known path asked with a method it does not serve.
pub async fn method_not_allowed() -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed" })),
    )
}

/// A handler that panicked answers a JSON 500 (and the panic is logged);
/// the connection and the server go on.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(detail, "request handler panicked");
    AppError::Internal(format!("panic: {detail}")).into_response()
}
