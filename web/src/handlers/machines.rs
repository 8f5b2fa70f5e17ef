//! `/my/machines`: add, rename, new token, deactivate/activate, delete.
//! Every change reloads ingest's tokens before it answers, so it holds for
//! the very next pulse sent to this server.

use super::{NoticeQuery, reload_tokens, site_changed, status_of};
use crate::{
    SiteChange, WebState,
    error::WebError,
    form::CsrfForm,
    pages::{Page, respond, see_other},
    session::Visitor,
};
use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use serde::{Deserialize, Serialize};
use sql::accounts::{self, Machine, machines};

/// The notices a redirect may ask for (`?notice=`), by code: a fixed set,
/// so no text from the URL reaches the page.
pub(crate) fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "welcome" => "Welcome! Add a machine for each computer you code on.",
        "renamed" => "Machine renamed.",
        "activated" => "Machine activated: its token works again.",
        "deactivated" => "Machine deactivated: its token is refused from now on; its XP stays.",
        "deleted" => "Machine deleted, with the XP it sent.",
        "password" => "Password set. Every other session was logged out.",
        "email" => "Email saved.",
        "private" => "Your profile is private now: its pages are gone.",
        "public" => "Your profile is public now.",
        "listed" => "You are on the leaderboards again, from the next rollup (within a minute).",
        "unlisted" => {
            "You left the leaderboards: you are off every one from the next rollup (within a minute)."
        }
        _ => return None,
    })
}

#[derive(Serialize)]
struct MachineView {
    /// In URLs: a string, so no JavaScript number rounds it.
    id: String,
    name: String,
    active: bool,
}

#[derive(Serialize)]
struct NewToken {
    machine: String,
    token: String,
}

#[derive(Serialize)]
struct MachinesView {
    machines: Vec<MachineView>,
    new_token: Option<NewToken>,
}

async fn page(
    web: &WebState,
    visitor: &Visitor,
    new_token: Option<NewToken>,
) -> Result<Page<MachinesView>, WebError> {
    let user = &visitor.require()?.user;
    let machines = machines::of_user(&web.db, user.user_id).await?;
    Ok(Page::new(
        "account/machines.html",
        "Machines",
        MachinesView {
            machines: machines
                .into_iter()
                .map(|m| MachineView {
                    id: m.machine_id.to_string(),
                    active: m.is_active(),
                    name: m.name,
                })
                .collect(),
            new_token,
        },
    ))
}

pub async fn home() -> Response {
    see_other("/my/machines", &[])
}

pub async fn show(
    State(web): State<WebState>,
    visitor: Visitor,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let mut page = page(&web, &visitor, None).await?;
    if let Some(text) = query.notice.as_deref().and_then(notice_text) {
        page = page.notice(text);
    }
    respond(&web, &visitor, page)
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: Option<String>,
}

pub async fn add(
    State(web): State<WebState>,
    CsrfForm { visitor, form }: CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    let user = visitor.require()?.user.clone();
    let name = form.name.unwrap_or_default();
    match machines::add(&web.db, &user, &name).await {
        Ok((machine, token)) => {
            reload_tokens(&web).await;
            tracing::info!(user = %user.username, machine = %machine.name, "machine added");
            show_token(&web, &visitor, machine, token, "Machine added.").await
        }
        Err(e) => refused(&web, &visitor, e).await,
    }
}

/// The machines page saying why a change was refused (a taken or invalid
/// name), or the error when it is not the request's mistake.
async fn refused(web: &WebState, visitor: &Visitor, e: sql::Error) -> Result<Response, WebError> {
    match status_of(&e) {
        Some(status) => {
            let page = page(web, visitor, None).await?.error(status, e.to_string());
            respond(web, visitor, page)
        }
        None => Err(e.into()),
    }
}

/// The machines page with `machine`'s new token, shown this once.
async fn show_token(
    web: &WebState,
    visitor: &Visitor,
    machine: Machine,
    token: String,
    notice: &str,
) -> Result<Response, WebError> {
    let new = NewToken {
        machine: machine.name,
        token,
    };
    let page = page(web, visitor, Some(new)).await?.notice(notice);
    respond(web, visitor, page)
}

/// The signed-in user's machine with this id.
async fn own_machine(web: &WebState, visitor: &Visitor, id: &str) -> Result<Machine, WebError> {
    let user = &visitor.require()?.user;
    let id: u64 = id.parse().map_err(|_| WebError::NotFound("machine"))?;
    Ok(machines::of_user_by_id(&web.db, user.user_id, id).await?)
}

pub async fn change(
    State(web): State<WebState>,
    Path((id, action)): Path<(String, String)>,
    CsrfForm { visitor, form }: CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    let machine = own_machine(&web, &visitor, &id).await?;
    let user = visitor.require()?.user.clone();
    let db = &web.db;
    let done = match action.as_str() {
        "rename" => {
            let to = form.name.unwrap_or_default();
            if let Err(e) = machines::rename(db, machine, &to).await {
                return refused(&web, &visitor, e).await;
            }
            reload_tokens(&web).await;
            "renamed"
        }
        "regenerate" => {
            let (machine, token) = machines::regenerate(db, machine).await?;
            reload_tokens(&web).await;
            tracing::info!(user = %user.username, machine = %machine.name, "token regenerated");
            let notice = "New token made: the old one is refused from now on.";
            return show_token(&web, &visitor, machine, token, notice).await;
        }
        "activate" | "deactivate" => {
            let active = action == "activate";
            machines::set_active(db, machine, active).await?;
            reload_tokens(&web).await;
            if active { "activated" } else { "deactivated" }
        }
        "delete" => {
            let machine = machines::mark_deleted(db, machine).await?;
            reload_tokens(&web).await;
            accounts::delete_machine_rows(db, machine.machine_id).await?;
            // Once more after a running ship of this machine's pulses has
            // certainly ended (see `DELETE_SETTLE`).
            let db = db.clone();
            let settle = web.config.delete_settle;
            web.tasks.spawn(async move {
                tokio::time::sleep(settle).await;
                if let Err(e) = accounts::delete_machine_rows(&db, machine.machine_id).await {
                    tracing::error!(machine_id = machine.machine_id, error = %e, "second pass of a machine delete failed");
                }
            });
            tracing::info!(user = %user.username, machine = %machine.name, "machine deleted");
            site_changed(&web, SiteChange::of(&user)).await;
            "deleted"
        }
        _ => return Err(WebError::NotFound("action")),
    };
    Ok(see_other(&format!("/my/machines?notice={done}"), &[]))
}
