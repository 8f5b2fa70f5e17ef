//! `GET/POST /signup`.

use super::{email_problem, password_problem, status_of};
use crate::{
    Registration, WebState,
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
use sql::{
    account_tokens::{self, Kind},
    accounts::{self, NewUser},
    claims::{self, Claim},
};

#[derive(Default, Deserialize, Serialize)]
pub struct SignupForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default, skip_serializing)]
    password: String,
    #[serde(default)]
    invite: Option<String>,
}

#[derive(Deserialize)]
pub struct InviteQuery {
    invite: Option<String>,
}

#[derive(Serialize)]
struct SignupView<'a> {
    open: bool,
    invite_only: bool,
    invite: Option<&'a str>,
    form: &'a SignupForm,
    min_password: usize,
}

fn page<'a>(
    open: bool,
    invite: Option<&'a str>,
    form: &'a SignupForm,
    web: &WebState,
) -> Page<SignupView<'a>> {
    Page::new(
        "account/signup.html",
        "Sign up",
        SignupView {
            open,
            invite_only: web.config.registration == Registration::Invite,
            invite,
            form,
            min_password: MIN_PASSWORD_CHARS,
        },
    )
}

/// Whether `invite` is a live invitation.
async fn invite_valid(web: &WebState, invite: Option<&str>) -> Result<bool, WebError> {
    let Some(invite) = invite.filter(|i| !i.is_empty() && i.len() <= 64) else {
        return Ok(false);
    };
    Ok(account_tokens::find(&web.db, Kind::Invite, invite)
        .await?
        .is_some())
}

/// Whether this visitor may sign up now (with `invite` in invite mode).
async fn allowed(web: &WebState, invite: Option<&str>) -> Result<bool, WebError> {
    Ok(match web.config.registration {
        Registration::Open => true,
        Registration::Invite => invite_valid(web, invite).await?,
        Registration::Closed => false,
    })
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<InviteQuery>,
) -> Result<Response, WebError> {
    if visitor.signed_in.is_some() {
        return Ok(see_other("/my/machines", &[]));
    }
    let invite = query.invite.as_deref();
    let open = allowed(&web, invite).await?;
    let form = SignupForm::default();
    let mut page = page(open, invite.filter(|_| open), &form, &web);
    if !open && web.config.registration == Registration::Invite && invite.is_some() {
        page = page.error(
            StatusCode::FORBIDDEN,
            "this invitation is not valid: it expired or was used already",
        );
    }
    respond(&web, &visitor, page)
}

pub async fn submit(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<SignupForm>,
) -> Result<Response, WebError> {
    let invite = form.invite.as_deref();
    if !allowed(&web, invite).await? {
        let page = page(false, None, &form, &web).error(
            StatusCode::FORBIDDEN,
            match web.config.registration {
                Registration::Invite => {
                    "this invitation is not valid: it expired or was used already"
                }
                _ => "sign-up is closed on this server",
            },
        );
        return respond(&web, &visitor, page);
    }
    let again = |status, message: String| {
        respond(
            &web,
            &visitor,
            page(true, invite, &form, &web).error(status, message),
        )
    };
    if let Err(e) = sql::names::validate_username(&form.username) {
        return again(StatusCode::BAD_REQUEST, e.to_string());
    }
    if let Some(problem) = email_problem(&form.email) {
        return again(StatusCode::BAD_REQUEST, problem);
    }
    if let Some(problem) = password_problem(&form.password) {
        return again(StatusCode::BAD_REQUEST, problem);
    }
    // Cheap refusals first: hashing is the expensive part.
    if accounts::find_user(&web.db, &form.username)
        .await?
        .is_some()
    {
        return again(
            StatusCode::CONFLICT,
            format!("the username {:?} is taken", form.username),
        );
    }
    let hash = password::hash(form.password.clone()).await?;
    let invite_claim = if web.config.registration == Registration::Invite {
        let key = format!(
            "invite:{}",
            sql::token::hash_hex(invite.unwrap_or_default())
        );
        match claims::claim(&web.db, &key).await? {
            Claim::Won(won) => Some((key, won)),
            Claim::Lost => {
                return again(
                    StatusCode::FORBIDDEN,
                    "this invitation was used already".into(),
                );
            }
        }
    } else {
        None
    };
    let created = accounts::create_user(
        &web.db,
        &NewUser {
            username: &form.username,
            email: &form.email,
            private: false,
            password_hash: &hash,
        },
    )
    .await;
    if created.is_err()
        && let Some((key, won)) = &invite_claim
    {
        // The invitation was not spent: free it for the next try.
        claims::finish(&web.db, key, won).await?;
    }
    let user = match created {
        Ok(user) => user,
        Err(sql::Error::Conflict(_)) => {
            return again(
                StatusCode::CONFLICT,
                format!("the username {:?} is taken", form.username),
            );
        }
        Err(e) => match status_of(&e) {
            Some(status) => return again(status, e.to_string()),
            None => return Err(e.into()),
        },
    };
    if web.config.registration == Registration::Invite
        && let Some(row) =
            account_tokens::find(&web.db, Kind::Invite, invite.unwrap_or_default()).await?
    {
        account_tokens::mark_used(&web.db, &row).await?;
    }
    tracing::info!(user = %user.username, "signed up");
    web.ingest.user_shown(user.user_id, &user.username);
    let cookies = session::start(&web, &user).await?;
    Ok(see_other("/my/machines?notice=welcome", &cookies))
}
