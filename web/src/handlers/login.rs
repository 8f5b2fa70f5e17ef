//! `GET/POST /login`, `POST /logout`.

use super::{Empty, Peer, client_address, too_many};
use crate::{
    WebState,
    error::WebError,
    form::CsrfForm,
    pages::{Page, private_headers, respond, see_other},
    password, session,
    session::Visitor,
};
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use sql::{account_tokens, accounts};

#[derive(Default, Deserialize, Serialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default, skip_serializing)]
    password: String,
}

#[derive(Serialize)]
struct LoginView<'a> {
    form: &'a LoginForm,
}

fn page(form: &LoginForm) -> Page<LoginView<'_>> {
    Page::new("account/login.html", "Log in", LoginView { form })
}

pub async fn show(State(web): State<WebState>, visitor: Visitor) -> Result<Response, WebError> {
    if visitor.signed_in.is_some() {
        return Ok(see_other("/my/machines", &[]));
    }
    respond(&web, &visitor, page(&LoginForm::default()))
}

pub async fn submit(
    State(web): State<WebState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    CsrfForm { visitor, form }: CsrfForm<LoginForm>,
) -> Result<Response, WebError> {
    let address = client_address(&web, peer, &headers);
    let name_key = sql::names::fold(&form.username);
    let account_key = format!("{name_key}\n{address}");
    let limits = &web.login_failures;
    // Each attempt is counted before the password is checked, so attempts
    // sent at once count too; a success gives its attempts back. Unknown
    // names are counted like known ones: the answers tell nobody which
    // names exist.
    let taken = [
        (&limits.address, address.as_str()),
        (&limits.account, account_key.as_str()),
        (&limits.account_any_address, name_key.as_str()),
    ];
    for (i, (counter, key)) in taken.iter().enumerate() {
        if let Err(wait) = counter.attempt(key) {
            for (counter, key) in &taken[..i] {
                counter.refund(key);
            }
            tracing::warn!(%address, "login refused: too many failures");
            return too_many(&web, &visitor, page(&form), "failed logins", wait);
        }
    }
    let user = if form.username.len() <= 256 {
        accounts::find_user(&web.db, &form.username).await?
    } else {
        None
    };
    let stored = match &user {
        Some(u) => Some(
            accounts::secrets::get(&web.db, u.user_id)
                .await?
                .password_hash,
        ),
        None => None,
    };
    if !password::verify(form.password.clone(), stored).await? {
        tracing::info!(%address, "failed login");
        return respond(
            &web,
            &visitor,
            page(&form).error(StatusCode::UNAUTHORIZED, "wrong username or password"),
        );
    }
    for (counter, key) in &taken {
        counter.refund(key);
    }
    let user = user.expect("a password matched, so the user exists");
    if let Some(old) = &visitor.signed_in {
        account_tokens::mark_used(&web.db, &old.session).await?;
    }
    let cookies = session::start(&web, &user).await?;
    tracing::info!(user = %user.username, "logged in");
    Ok(see_other("/my/machines", &cookies))
}

pub async fn logout(
    State(web): State<WebState>,
    CsrfForm { visitor, .. }: CsrfForm<Empty>,
) -> Result<Response, WebError> {
    if let Some(signed_in) = &visitor.signed_in {
        account_tokens::mark_used(&web.db, &signed_in.session).await?;
    }
    let mut response = see_other("/", &session::clear(&web));
    private_headers(&mut response);
    Ok(response)
}
