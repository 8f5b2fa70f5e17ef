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
    account_tokens::{self, AccountToken, Kind},
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

/// Whether this visitor may sign up now.
enum Admission {
    Open,
    /// In invite mode, with this live invitation.
    Invited(AccountToken),
    Refused,
}

impl Admission {
    fn allowed(&self) -> bool {
        !matches!(self, Admission::Refused)
    }
}

async fn admission(web: &WebState, invite: Option<&str>) -> Result<Admission, WebError> {
    Ok(match web.config.registration {
        Registration::Open => Admission::Open,
        Registration::Closed => Admission::Refused,
        Registration::Invite => match invite.filter(|i| !i.is_empty() && i.len() <= 64) {
            Some(invite) => account_tokens::find(&web.db, Kind::Invite, invite)
                .await?
                .map_or(Admission::Refused, Admission::Invited),
            None => Admission::Refused,
        },
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
    let open = admission(&web, invite).await?.allowed();
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
    let admission = admission(&web, invite).await?;
    if !admission.allowed() {
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
    let invite_claim = match &admission {
        Admission::Invited(row) => {
            let key = format!("invite:{}", row.token_hash);
            match claims::claim(&web.db, &key).await? {
                Claim::Won(won) => Some((key, won, row)),
                Claim::Lost => {
                    return again(
                        StatusCode::FORBIDDEN,
                        "this invitation was used already".into(),
                    );
                }
            }
        }
        _ => None,
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
        && let Some((key, won, _)) = &invite_claim
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
    if let Some((_, _, row)) = invite_claim {
        account_tokens::mark_used(&web.db, row).await?;
    }
    tracing::info!(user = %user.username, "signed up");
    web.ingest.user_shown(user.user_id, &user.username);
    let cookies = session::start(&web, &user).await?;
    Ok(see_other("/my/machines?notice=welcome", &cookies))
}
