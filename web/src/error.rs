//! The error policy of accounts on the web.
//!
//! A mistake a person can fix in a form (a taken name, a short password, a
//! wrong password) is not an error here: the handler shows the form again
//! with the message and the fitting status. What is left answers JSON
//! `{"error": "..."}` like the rest of the service: a forged or stale form
//! (403), a malformed request (400), an unknown machine (404), and 5xx whose
//! details are logged by ingest's `log_server_errors` and never sent. A
//! page that needs a session redirects to `/login` instead.

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use ingest::error::ErrorDetail;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "the form's security token is missing or out of date: reload the page and send it again"
    )]
    Csrf,
    #[error("log in first")]
    SignInRequired,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests at once, try again in a moment")]
    Busy,
    #[error("{0}")]
    TooMany(&'static str),
    #[error("form body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("form body not received in time")]
    RequestTimeout,
    #[error("storage is unavailable, try again later")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sql::Error> for WebError {
    fn from(e: sql::Error) -> Self {
        // Reached when a change races another (a machine deleted twice at
        // once, say): the request's own mistake, not the server's.
        match e {
            sql::Error::NotFound(_) => return WebError::NotFound("account or machine"),
            sql::Error::Conflict(what) => {
                return WebError::Conflict(format!("{what} already exists"));
            }
            sql::Error::Invalid(why) => return WebError::BadRequest(why),
            _ => {}
        }
        if e.is_transient() {
            tracing::warn!(error = %e, "clickhouse unavailable for an account page");
            WebError::Unavailable
        } else {
            WebError::Internal(e.to_string())
        }
    }
}

impl From<builder::Error> for WebError {
    fn from(e: builder::Error) -> Self {
        WebError::Internal(format!("rendering: {e}"))
    }
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::SignInRequired => StatusCode::SEE_OTHER,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            WebError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            WebError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::SignInRequired = self {
            return Redirect::to("/login").into_response();
        }
        let message = match &self {
            WebError::Internal(_) => "internal server error".to_owned(),
            other => other.to_string(),
        };
        let mut response = (self.status(), Json(json!({ "error": message }))).into_response();
        match self {
            WebError::Internal(detail) => {
                response.extensions_mut().insert(ErrorDetail(detail));
            }
            WebError::Unavailable | WebError::Busy => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(5));
            }
            _ => {}
        }
        response
    }
}

/// Answers the rejections of axum's own extractors (a malformed query
/// string or path segment) as JSON, like every other error.
pub async fn json_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(response.status().is_client_error() && plain) {
        return response;
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    (status, Json(json!({ "error": message }))).into_response()
}
