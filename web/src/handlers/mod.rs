//! The request handlers, one module per page.

pub mod export;
pub mod login;
pub mod machines;
pub mod preferences;
pub mod reset;
pub mod signup;

use crate::{WebState, config};
use axum::http::{HeaderMap, StatusCode};
use std::net::SocketAddr;

/// What is wrong with a new password, if anything.
pub(crate) fn password_problem(password: &str) -> Option<String> {
    if password.chars().count() < config::MIN_PASSWORD_CHARS {
        Some(format!(
            "the password must be at least {} characters",
            config::MIN_PASSWORD_CHARS
        ))
    } else if password.len() > config::MAX_PASSWORD_BYTES {
        Some(format!(
            "the password may be at most {} bytes",
            config::MAX_PASSWORD_BYTES
        ))
    } else {
        None
    }
}

/// What is wrong with an email address, if anything (empty is allowed: no
/// address, no mailed resets).
pub(crate) fn email_problem(email: &str) -> Option<String> {
    if email.is_empty() {
        return None;
    }
    let ok = email.len() <= config::MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    (!ok).then(|| "that does not look like an email address".to_owned())
}

/// The status a refused account change is shown with.
pub(crate) fn status_of(e: &sql::Error) -> Option<StatusCode> {
    match e {
        sql::Error::Invalid(_) => Some(StatusCode::BAD_REQUEST),
        sql::Error::Conflict(_) => Some(StatusCode::CONFLICT),
        sql::Error::NotFound(_) => Some(StatusCode::NOT_FOUND),
        _ => None,
    }
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when
/// the operator said a proxy writes it.
pub(crate) fn client_address(
    web: &WebState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> String {
    if web.config.trust_forwarded_for
        && let Some(last) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
    {
        return last.to_owned();
    }
    peer.map(|p| p.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The peer's address, when the server recorded it (`ConnectInfo`).
pub(crate) struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// Runs the site hook for a user whose public state changed.
pub(crate) async fn site_changed(web: &WebState, change: crate::SiteChange) {
    if let Some(hook) = &web.site {
        hook(change).await;
    }
}

/// Reloads ingest's token set now, so a change is in force for the next
/// pulse; a failure (the change is written) leaves it to the periodic
/// reload, within `TOKEN_REFRESH`.
pub(crate) async fn reload_tokens(web: &WebState) {
    if let Err(e) = web.ingest.tokens.refresh(&web.db).await {
        tracing::warn!(error = %e, "cannot reload tokens now; the periodic reload will");
    }
}
