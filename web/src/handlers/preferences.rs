//! `/my/preferences`: privacy, the leaderboards, email, password,
//! sessions, deleting the account.

use super::{
    Empty, NoticeQuery, email_problem, machines::notice_text, password_problem, reload_tokens,
    site_changed, too_many,
};
use crate::{
    SiteChange, WebState,
    config::MIN_PASSWORD_CHARS,
    error::WebError,
    form::CsrfForm,
    pages::{Page, respond, see_other},
    password, session,
    session::Visitor,
};
use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use sql::{account_tokens, accounts};

#[derive(Serialize)]
struct PreferencesView {
    private: bool,
    leaderboards: bool,
    email: String,
    min_password: usize,
}

async fn page(web: &WebState, visitor: &Visitor) -> Result<Page<PreferencesView>, WebError> {
    let user = &visitor.require()?.user;
    let prefs = accounts::preferences::of_user(&web.db, user.user_id).await?;
    Ok(Page::new(
        "account/preferences.html",
        "Preferences",
        PreferencesView {
            private: user.is_private(),
            leaderboards: prefs.on_leaderboards(),
            email: user.email.clone(),
            min_password: MIN_PASSWORD_CHARS,
        },
    ))
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let mut page = page(&web, &visitor).await?;
    if let Some(text) = query.notice.as_deref().and_then(notice_text) {
        page = page.notice(text);
    }
    respond(&web, &visitor, page)
}

#[derive(Deserialize)]
pub struct PrivacyForm {
    #[serde(default)]
    private: String,
}

pub async fn privacy(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<PrivacyForm>,
) -> Result<Response, WebError> {
    let user = &visitor.require()?.user;
    let private = match form.private.as_str() {
        "1" => true,
        "0" => false,
        _ => return Err(WebError::BadRequest("private must be 0 or 1".into())),
    };
    let user = accounts::set_user_private(&web.db, user.clone(), private).await?;
    if private {
        web.ingest.user_hidden(user.user_id);
    } else {
        web.ingest.user_shown(user.user_id, &user.username);
    }
    reload_tokens(&web).await;
    tracing::info!(user = %user.username, private, "privacy changed");
    site_changed(
        &web,
        SiteChange {
            user_id: user.user_id,
            username: user.username.clone(),
            public: !private,
        },
    )
    .await;
    let notice = if private { "private" } else { "public" };
    Ok(see_other(&format!("/my/preferences?notice={notice}"), &[]))
}

#[derive(Deserialize)]
pub struct LeaderboardsForm {
    #[serde(default)]
    leaderboards: String,
}

/// Lists the user on the leaderboards or leaves them off; the boards
/// follow at the rollup this asks for.
pub async fn leaderboards(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<LeaderboardsForm>,
) -> Result<Response, WebError> {
    let user = &visitor.require()?.user;
    let listed = match form.leaderboards.as_str() {
        "1" => true,
        "0" => false,
        _ => return Err(WebError::BadRequest("leaderboards must be 0 or 1".into())),
    };
    accounts::preferences::set_leaderboards(&web.db, user, listed).await?;
    tracing::info!(user = %user.username, listed, "leaderboards preference changed");
    site_changed(&web, SiteChange::of(user)).await;
    let notice = if listed { "listed" } else { "unlisted" };
    Ok(see_other(&format!("/my/preferences?notice={notice}"), &[]))
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    current: String,
}

pub async fn email(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<EmailForm>,
) -> Result<Response, WebError> {
    let user = &visitor.require()?.user;
    let email = form.email.trim();
    if let Some(problem) = email_problem(email) {
        return respond(
            &web,
            &visitor,
            page(&web, &visitor)
                .await?
                .error(StatusCode::BAD_REQUEST, problem),
        );
    }
    // Where reset links go decides who can take the account over: a
    // session alone (a borrowed laptop) may not change it.
    if let Some(refused) = check_current(&web, &visitor, form.current).await? {
        return Ok(refused);
    }
    accounts::set_email(&web.db, user.user_id, email).await?;
    Ok(see_other("/my/preferences?notice=email", &[]))
}

/// Checks the current password a form carries; `Some(page)` to answer
/// when it is wrong or the account's attempts are used up. Wrong current
/// passwords count like failed logins of the account.
async fn check_current(
    web: &WebState,
    visitor: &Visitor,
    current: String,
) -> Result<Option<Response>, WebError> {
    let user = &visitor.require()?.user;
    let key = sql::names::fold(&user.username);
    let limits = &web.login_failures;
    if let Err(wait) = limits.account_any_address.attempt(&key) {
        return too_many(
            web,
            visitor,
            page(web, visitor).await?,
            "wrong passwords",
            wait,
        )
        .map(Some);
    }
    let stored = accounts::secrets::get(&web.db, user.user_id)
        .await?
        .password_hash;
    if !password::verify(current, Some(stored)).await? {
        let page = page(web, visitor)
            .await?
            .error(StatusCode::UNAUTHORIZED, "the current password is wrong");
        return respond(web, visitor, page).map(Some);
    }
    limits.account_any_address.refund(&key);
    Ok(None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
}

pub async fn password(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<PasswordForm>,
) -> Result<Response, WebError> {
    let signed_in = visitor.require()?;
    let user = &signed_in.user;
    if let Some(refused) = check_current(&web, &visitor, form.current).await? {
        return Ok(refused);
    }
    if let Some(problem) = password_problem(&form.password) {
        return respond(
            &web,
            &visitor,
            page(&web, &visitor)
                .await?
                .error(StatusCode::BAD_REQUEST, problem),
        );
    }
    let hash = password::hash(form.password).await?;
    // Every session made before now ends, this one too; this browser gets
    // a new one.
    accounts::secrets::set_password(&web.db, user.user_id, &hash).await?;
    account_tokens::mark_used(&web.db, &signed_in.session).await?;
    let cookies = session::start(&web, user).await?;
    tracing::info!(user = %user.username, "password changed");
    Ok(see_other("/my/preferences?notice=password", &cookies))
}

/// "Log out everywhere": every session of the user ends, this one too.
pub async fn end_sessions(
    State(web): State<WebState>,
    CsrfForm { visitor, .. }: CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let user = &visitor.require()?.user;
    accounts::secrets::end_sessions(&web.db, user.user_id).await?;
    tracing::info!(user = %user.username, "logged out everywhere");
    Ok(see_other("/login", &session::clear(&web)))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

#[derive(Serialize)]
struct MessageView {
    message: &'static str,
    link: Option<Link>,
}

#[derive(Serialize)]
struct Link {
    href: &'static str,
    text: &'static str,
}

pub async fn delete(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<DeleteForm>,
) -> Result<Response, WebError> {
    let user = visitor.require()?.user.clone();
    if form.confirm != user.username {
        return respond(
            &web,
            &visitor,
            page(&web, &visitor).await?.error(
                StatusCode::BAD_REQUEST,
                "to delete the account, type its username exactly",
            ),
        );
    }
    let db = &web.db;
    accounts::mark_user_deleted(db, user.clone()).await?;
    web.ingest.user_hidden(user.user_id);
    reload_tokens(&web).await;
    site_changed(
        &web,
        SiteChange {
            user_id: user.user_id,
            username: user.username.clone(),
            public: false,
        },
    )
    .await;
    accounts::delete_user_rows(db, user.user_id).await?;
    // Once more after a running ship of their pulses has certainly ended,
    // then the user row itself; a stop before that is finished by
    // `web::housekeeping` at the next start.
    let db = db.clone();
    let user_id = user.user_id;
    let settle = web.config.delete_settle;
    web.tasks.spawn(async move {
        tokio::time::sleep(settle).await;
        let last = async {
            accounts::delete_user_rows(&db, user_id).await?;
            accounts::delete_user_row(&db, user_id).await
        };
        if let Err(e) = last.await {
            tracing::error!(user_id, error = %e, "last pass of an account delete failed; housekeeping retries");
        }
    });
    tracing::info!(user = %user.username, "account deleted");
    let gone = Visitor::anonymous();
    let mut response = respond(
        &web,
        &gone,
        Page::new(
            "account/message.html",
            "Account deleted",
            MessageView {
                message: "Your account, your machines and all your XP are deleted. Thank you for coding with us.",
                link: Some(Link {
                    href: "/",
                    text: "Back to the front page",
                }),
            },
        ),
    )?;
    for c in session::clear(&web) {
        session::add_cookie(&mut response, &c);
    }
    Ok(response)
}
