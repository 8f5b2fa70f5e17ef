//! The request handlers, one module per page.

pub mod export;
pub mod login;
pub mod machines;
pub mod preferences;
pub mod reset;
pub mod signup;

use crate::{WebState, config};
use axum::http::{HeaderMap, StatusCode};
use std::net::{IpAddr, SocketAddr};

/// A form with no fields but `_csrf`.
#[derive(serde::Deserialize)]
pub struct Empty {}

/// `?notice=CODE` after a redirect (see [`machines::notice_text`]).
#[derive(serde::Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// `page` refusing with 429: "too many WHAT: try again in N minute(s)",
/// and `Retry-After`.
pub(crate) fn too_many<T: serde::Serialize>(
    web: &WebState,
    visitor: &crate::session::Visitor,
    page: crate::pages::Page<T>,
    what: &str,
    wait: std::time::Duration,
) -> Result<axum::response::Response, crate::error::WebError> {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let page = page.error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many {what}: try again in {minutes} minute(s)"),
    );
    let mut response = crate::pages::respond(web, visitor, page)?;
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(wait.as_secs().max(1)),
    );
    Ok(response)
}

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

/// The client's address as the login limits count it: the peer, or the
/// last `X-Forwarded-For` hop when the operator said a proxy writes it.
/// IPv6 addresses count by their /64 (one customer's network), and
/// anything that is not an address counts as one unknown client.
pub(crate) fn client_address(
    web: &WebState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> String {
    let forwarded = || {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
            .map(|s| s.parse::<IpAddr>().ok())
    };
    let ip = if web.config.trust_forwarded_for {
        forwarded().unwrap_or_else(|| peer.map(|p| p.ip()))
    } else {
        peer.map(|p| p.ip())
    };
    match ip {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map(|v4| v4.to_string())
            .unwrap_or_default(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        None => "unknown".to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_emails_are_checked() {
        assert!(password_problem("short").is_some());
        assert!(password_problem("long enough").is_none());
        assert!(password_problem(&"x".repeat(2_000)).is_some());
        assert!(email_problem("").is_none());
        assert!(email_problem("a@example.com").is_none());
        for bad in [
            "a",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@exa\nmple.com",
        ] {
            assert!(email_problem(bad).is_some(), "{bad:?}");
        }
    }
}
