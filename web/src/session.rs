//! Who is asking: the session cookie, checked against ClickHouse on every
//! request, and the CSRF token of the forms they are shown.
//!
//! Cookies:
//! - [`SESSION_COOKIE`]: the session's secret (`HttpOnly`, `SameSite=Lax`,
//!   `Secure` over https). The store keeps only its hash. A session is
//!   void once logged out, expired, its user deleted, or created before the
//!   user's `sessions_after` (log out everywhere, a password change).
//! - [`CSRF_COOKIE`]: a random secret for visitors without a session
//!   (`HttpOnly`, `SameSite=Strict`), so the login and sign-up forms are
//!   protected too.
//! - [`ACCOUNT_COOKIE`]: the username, readable by the static pages' script
//!   to show the account menu; it grants nothing.
//!
//! A form's `_csrf` is the SHA-256 of the session's secret (or of the CSRF
//! cookie), so a page on another site can neither read nor forge it.

use crate::{WebState, error::WebError};
use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::Response,
};
use cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};
use sql::{
    account_tokens::{self, AccountToken, Kind},
    accounts::User,
};

pub const SESSION_COOKIE: &str = "codestats_session";
pub const CSRF_COOKIE: &str = "codestats_csrf";
pub const ACCOUNT_COOKIE: &str = "codestats_account";
/// The form field every state-changing form carries.
pub const CSRF_FIELD: &str = "_csrf";

/// A signed-in visitor. Not `Debug`: it holds the session's secret.
#[derive(Clone)]
pub struct SignedIn {
    pub user: User,
    pub session: AccountToken,
    secret: String,
}

/// Anyone asking, signed in or not. Not `Debug`: it holds secrets.
#[derive(Clone)]
pub struct Visitor {
    pub signed_in: Option<SignedIn>,
    /// The anonymous CSRF secret, from the cookie or made now.
    anon_secret: String,
    /// Whether `anon_secret` was made for this request (and must be set).
    anon_is_new: bool,
}

fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'static>> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()).filter_map(Result::ok))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_values(headers)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| plausible_secret(v))
}

/// Secrets are 43 characters of URL-safe base64; anything else is ignored
/// before it reaches a hash or the store.
fn plausible_secret(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn csrf_of(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"codestats csrf\0");
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

impl Visitor {
    /// Reads the cookies and checks the session.
    pub async fn from_headers(web: &WebState, headers: &HeaderMap) -> Result<Self, WebError> {
        let signed_in = match cookie(headers, SESSION_COOKIE) {
            Some(secret) => check_session(web, secret).await?,
            None => None,
        };
        let (anon_secret, anon_is_new) = match cookie(headers, CSRF_COOKIE) {
            Some(secret) => (secret, false),
            None => (account_tokens::generate(), true),
        };
        Ok(Self {
            signed_in,
            anon_secret,
            anon_is_new,
        })
    }

    /// A visitor with no session and a fresh CSRF secret (a page shown
    /// right after the account it was signed in to ended).
    pub fn anonymous() -> Self {
        Self {
            signed_in: None,
            anon_secret: account_tokens::generate(),
            anon_is_new: true,
        }
    }

    /// The `_csrf` value for forms shown to this visitor.
    pub fn csrf_token(&self) -> String {
        match &self.signed_in {
            Some(s) => csrf_of(&s.secret),
            None => csrf_of(&self.anon_secret),
        }
    }

    /// Refuses (403) a form whose `_csrf` is not this visitor's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), WebError> {
        let expected = self.csrf_token();
        match sent {
            Some(sent) if sql::token::hashes_equal(sent.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }

    /// The signed-in user, or [`WebError::SignInRequired`].
    pub fn require(&self) -> Result<&SignedIn, WebError> {
        self.signed_in.as_ref().ok_or(WebError::SignInRequired)
    }

    /// Sets the anonymous CSRF cookie on `response` when it was made now.
    pub fn finish(&self, web: &WebState, mut response: Response) -> Response {
        if self.anon_is_new && self.signed_in.is_none() {
            let c = Cookie::build((CSRF_COOKIE, self.anon_secret.clone()))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(web.config.secure_cookies())
                .build();
            add_cookie(&mut response, &c);
        }
        response
    }
}

impl SignedIn {
    pub fn user_id(&self) -> u64 {
        self.user.user_id
    }
}

async fn check_session(web: &WebState, secret: String) -> Result<Option<SignedIn>, WebError> {
    let found = account_tokens::find_with_user(&web.db, Kind::Session, &secret).await?;
    Ok(found.map(|(session, user)| SignedIn {
        user,
        session,
        secret,
    }))
}

impl FromRequestParts<WebState> for Visitor {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        web: &WebState,
    ) -> Result<Self, Self::Rejection> {
        Visitor::from_headers(web, &parts.headers).await
    }
}

pub fn add_cookie(response: &mut Response, c: &Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&c.encoded().to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Starts a session for `user`: the cookies to set.
pub async fn start(web: &WebState, user: &User) -> Result<Vec<Cookie<'static>>, WebError> {
    let (secret, _) = account_tokens::create(
        &web.db,
        Kind::Session,
        user.user_id,
        crate::config::SESSION_TTL,
    )
    .await?;
    let secure = web.config.secure_cookies();
    let max_age = cookie::time::Duration::seconds(crate::config::SESSION_TTL.as_secs() as i64);
    Ok(vec![
        Cookie::build((SESSION_COOKIE, secret))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(max_age)
            .build(),
        Cookie::build((ACCOUNT_COOKIE, user.username.clone()))
            .path("/")
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(max_age)
            .build(),
    ])
}

/// The cookies that end a session in the browser.
pub fn clear(web: &WebState) -> Vec<Cookie<'static>> {
    [SESSION_COOKIE, ACCOUNT_COOKIE]
        .into_iter()
        .map(|name| {
            Cookie::build((name, ""))
                .path("/")
                .secure(web.config.secure_cookies())
                .max_age(cookie::time::Duration::ZERO)
                .build()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_depend_on_the_secret_and_hide_it() {
        let a = account_tokens::generate();
        let b = account_tokens::generate();
        assert!(plausible_secret(&a));
        assert_ne!(csrf_of(&a), csrf_of(&b));
        assert!(!csrf_of(&a).contains(&a));
        assert!(!plausible_secret("short"));
        assert!(!plausible_secret(&format!("{}!", &a[..42])));
    }
}
