//! `/my/machines`: add, rename, new token, deactivate/activate, delete.
//! Every change reloads ingest's tokens before it answers, so it holds for
//! the very next pulse sent to this server.

use super::{reload_tokens, site_changed, status_of};
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
use sql::accounts::{self, DELETE_SETTLE, Machine};

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
        _ => return None,
    })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
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
    api_url: String,
}

async fn page(
    web: &WebState,
    visitor: &Visitor,
    new_token: Option<NewToken>,
) -> Result<Page<MachinesView>, WebError> {
    let user = &visitor.require()?.user;
    let machines = accounts::list_machines(&web.db, user).await?;
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
            api_url: web.config.public_url.trim_end_matches('/').to_owned(),
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
    match accounts::add_machine(&web.db, &user.username, &name).await {
        Ok((machine, token)) => {
            reload_tokens(&web).await?;
            tracing::info!(user = %user.username, machine = %machine.name, "machine added");
            let new = NewToken {
                machine: machine.name,
                token,
            };
            let page = page(&web, &visitor, Some(new))
                .await?
                .notice("Machine added.");
            respond(&web, &visitor, page)
        }
        Err(e) => match status_of(&e) {
            Some(status) => {
                let page = page(&web, &visitor, None)
                    .await?
                    .error(status, e.to_string());
                respond(&web, &visitor, page)
            }
            None => Err(e.into()),
        },
    }
}

/// The signed-in user's machine with this id.
async fn own_machine(web: &WebState, visitor: &Visitor, id: &str) -> Result<Machine, WebError> {
    let user = &visitor.require()?.user;
    let id: u64 = id.parse().map_err(|_| WebError::NotFound("machine"))?;
    accounts::list_machines(&web.db, user)
        .await?
        .into_iter()
        .find(|m| m.machine_id == id)
        .ok_or(WebError::NotFound("machine"))
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
            if let Err(e) = accounts::rename_machine(db, &user.username, &machine.name, &to).await {
                return match status_of(&e) {
                    Some(status) => {
                        let page = page(&web, &visitor, None)
                            .await?
                            .error(status, e.to_string());
                        respond(&web, &visitor, page)
                    }
                    None => Err(e.into()),
                };
            }
            reload_tokens(&web).await?;
            "renamed"
        }
        "regenerate" => {
            let (machine, token) =
                accounts::regenerate_token(db, &user.username, &machine.name).await?;
            reload_tokens(&web).await?;
            tracing::info!(user = %user.username, machine = %machine.name, "token regenerated");
            let new = NewToken {
                machine: machine.name,
                token,
            };
            let page = page(&web, &visitor, Some(new))
                .await?
                .notice("New token made: the old one is refused from now on.");
            return respond(&web, &visitor, page);
        }
        "activate" | "deactivate" => {
            let active = action == "activate";
            accounts::set_machine_active(db, &user.username, &machine.name, active).await?;
            reload_tokens(&web).await?;
            if active { "activated" } else { "deactivated" }
        }
        "delete" => {
            let machine = accounts::mark_machine_deleted(db, &user.username, &machine.name).await?;
            reload_tokens(&web).await?;
            accounts::delete_machine_rows(db, machine.machine_id).await?;
            // Once more after a running ship of this machine's pulses has
            // certainly ended (see `DELETE_SETTLE`).
            let db = db.clone();
            web.tasks.spawn(async move {
                tokio::time::sleep(DELETE_SETTLE).await;
                if let Err(e) = accounts::delete_machine_rows(&db, machine.machine_id).await {
                    tracing::error!(machine_id = machine.machine_id, error = %e, "second pass of a machine delete failed");
                }
            });
            tracing::info!(user = %user.username, machine = %machine.name, "machine deleted");
            site_changed(
                &web,
                SiteChange {
                    user_id: user.user_id,
                    username: user.username.clone(),
                    public: !user.is_private(),
                },
            )
            .await;
            "deleted"
        }
        _ => return Err(WebError::NotFound("action")),
    };
    Ok(see_other(&format!("/my/machines?notice={done}"), &[]))
}
