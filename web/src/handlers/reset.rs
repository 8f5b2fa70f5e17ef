//! `/password-reset`: a one-time, expiring link by mail (or printed by
//! `codestats users reset-password`), and the form it leads to.

use super::{Peer, client_address, password_problem, too_many};
use crate::{
    WebState,
    config::{MIN_PASSWORD_CHARS, RESET_TTL},
    error::WebError,
    form::CsrfForm,
    pages::{Page, respond, see_other},
    password, session,
    session::Visitor,
};
use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use sql::{
    account_tokens::{self, AccountToken, Kind},
    accounts::{self, User},
    claims::{self, Claim},
};

#[derive(Serialize)]
struct RequestView {
    mail: bool,
    link_minutes: u64,
}

fn request_page(web: &WebState) -> Page<RequestView> {
    Page::new(
        "account/reset_request.html",
        "Reset your password",
        RequestView {
            mail: web.mailer.is_some(),
            link_minutes: RESET_TTL.as_secs() / 60,
        },
    )
}

pub async fn show(State(web): State<WebState>, visitor: Visitor) -> Result<Response, WebError> {
    respond(&web, &visitor, request_page(&web))
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    username: String,
}

/// A reset link for `user`, valid for [`RESET_TTL`], once.
pub async fn create_link(db: &sql::Db, public_url: &str, user: &User) -> sql::Result<String> {
    let (secret, _) = account_tokens::create(db, Kind::Reset, user.user_id, RESET_TTL).await?;
    Ok(crate::config::link(
        public_url,
        &format!("/password-reset/{secret}"),
    ))
}

pub async fn submit(
    State(web): State<WebState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    CsrfForm { visitor, form }: CsrfForm<RequestForm>,
) -> Result<Response, WebError> {
    if web.mailer.is_none() {
        return respond(&web, &visitor, request_page(&web));
    }
    let address = client_address(&web, peer, &headers);
    let limits = &web.login_failures;
    if let Err(wait) = limits.reset_requests.attempt(&address) {
        return too_many(&web, &visitor, request_page(&web), "requests", wait);
    }
    // The answer is the same, and comes as fast, whether the account
    // exists, has an address, or was sent too many links: the lookup, the
    // link and the mail happen after it.
    if form.username.len() <= 256 {
        let web2 = web.clone();
        web.tasks.spawn(async move {
            if let Err(e) = mail_link(&web2, &form.username).await {
                tracing::error!(error = %e, "cannot mail a password reset");
            }
        });
    }
    respond(
        &web,
        &visitor,
        request_page(&web).notice(
            "If that account has an email address, a link to set a new password is on its way.",
        ),
    )
}

/// Mails a reset link to `username`'s address, if the account exists, has
/// one, and was not sent [`RESET_MAILS_PER_HOUR`](crate::limits::RESET_MAILS_PER_HOUR)
/// links this hour.
async fn mail_link(web: &WebState, username: &str) -> Result<(), String> {
    let Some(mailer) = web.mailer.as_ref() else {
        return Ok(());
    };
    let Some(user) = accounts::find_user(&web.db, username)
        .await
        .map_err(|e| e.to_string())?
        .filter(|u| !u.email.is_empty())
    else {
        return Ok(());
    };
    if web
        .login_failures
        .mails
        .attempt(&user.user_id.to_string())
        .is_err()
    {
        tracing::warn!(user = %user.username, "reset mails for this account are used up this hour");
        return Ok(());
    }
    let link = create_link(&web.db, &web.config.public_url, &user)
        .await
        .map_err(|e| e.to_string())?;
    let body = format!(
        "Someone (hopefully you) asked to reset the password of your account on {}.\n\n\
         Set a new password here within {} minutes; the link works once:\n\n{link}\n\n\
         If it was not you, ignore this mail: your password stays as it is.\n",
        web.config.public_url,
        RESET_TTL.as_secs() / 60,
    );
    mailer
        .send(&user.email, "Reset your codestats password", body)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(user = %user.username, "password reset mailed");
    Ok(())
}

#[derive(Serialize)]
struct LinkView<'a> {
    valid: bool,
    token: &'a str,
    username: &'a str,
    min_password: usize,
}

/// The reset token behind `secret` and its user, if the link still works:
/// not used, not expired, and made after the last password change.
async fn live_link(web: &WebState, secret: &str) -> Result<Option<(AccountToken, User)>, WebError> {
    if secret.len() > 64 {
        return Ok(None);
    }
    Ok(account_tokens::find_with_user(&web.db, Kind::Reset, secret).await?)
}

fn link_page<'a>(token: &'a str, user: Option<&'a User>) -> Page<LinkView<'a>> {
    let page = Page::new(
        "account/reset.html",
        "Set a new password",
        LinkView {
            valid: user.is_some(),
            token,
            username: user.map(|u| u.username.as_str()).unwrap_or(""),
            min_password: MIN_PASSWORD_CHARS,
        },
    );
    if user.is_some() {
        page
    } else {
        Page {
            status: StatusCode::NOT_FOUND,
            ..page
        }
    }
}

pub async fn show_link(
    State(web): State<WebState>,
    visitor: Visitor,
    Path(secret): Path<String>,
) -> Result<Response, WebError> {
    let link = live_link(&web, &secret).await?;
    respond(
        &web,
        &visitor,
        link_page(&secret, link.as_ref().map(|(_, u)| u)),
    )
}

#[derive(Deserialize)]
pub struct SetForm {
    #[serde(default)]
    password: String,
}

pub async fn set_password(
    State(web): State<WebState>,
    Path(secret): Path<String>,
    CsrfForm { visitor, form }: CsrfForm<SetForm>,
) -> Result<Response, WebError> {
    let Some((token, user)) = live_link(&web, &secret).await? else {
        return respond(&web, &visitor, link_page(&secret, None));
    };
    if let Some(problem) = password_problem(&form.password) {
        return respond(
            &web,
            &visitor,
            link_page(&secret, Some(&user)).error(StatusCode::BAD_REQUEST, problem),
        );
    }
    let hash = password::hash(form.password).await?;
    // One use, even when the link is sent twice at once.
    if claims::claim(&web.db, &format!("reset:{}", token.token_hash)).await? == Claim::Lost {
        return respond(&web, &visitor, link_page(&secret, None));
    }
    accounts::secrets::set_password(&web.db, user.user_id, &hash).await?;
    account_tokens::mark_used(&web.db, &token).await?;
    tracing::info!(user = %user.username, "password reset");
    let cookies = session::start(&web, &user).await?;
    Ok(see_other("/my/preferences?notice=password", &cookies))
}
