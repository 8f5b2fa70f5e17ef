//! `GET /api/users/NAME`: the Code::Stats read API, computed from ClickHouse.

use crate::{AppState, error::AppError};
use axum::{
    Json,
    extract::{Path, State},
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub const USER_NOT_FOUND: &str = "User not found or private.";
/// XP coded within this window counts as "new".
pub const NEW_XP_WINDOW_SECS: u32 = 12 * 3600;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct XpPair {
    pub xps: u64,
    pub new_xps: u64,
}

/// Exactly the keys Code::Stats answers with; clients parse them strictly.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct UserStats {
    pub user: String,
    pub total_xp: u64,
    pub new_xp: u64,
    pub machines: BTreeMap<String, XpPair>,
    pub languages: BTreeMap<String, XpPair>,
    pub dates: BTreeMap<String, u64>,
}

pub async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<UserStats>, AppError> {
    // `/api/users/NAME.json` is the static site's name for the same answer.
    let mut user = sql::accounts::find_user(&app.db, &name).await?;
    if user.is_none()
        && let Some(stem) = name.strip_suffix(".json")
    {
        user = sql::accounts::find_user(&app.db, stem).await?;
    }
    let user = user
        .filter(|u| !u.is_private())
        .ok_or(AppError::NotFound(USER_NOT_FOUND))?;
    let since = crate::commit::now_secs().saturating_sub(NEW_XP_WINDOW_SECS);
    let (machines, xp, dates) = tokio::try_join!(
        sql::accounts::list_machines(&app.db, &user),
        sql::pulses::user_xp(&app.db, user.user_id, since),
        sql::pulses::user_xp_by_local_date(&app.db, user.user_id),
    )?;
    let machine_names: HashMap<u64, String> = machines
        .into_iter()
        .map(|m| (m.machine_id, m.name))
        .collect();

    let mut stats = UserStats {
        user: user.username,
        total_xp: 0,
        new_xp: 0,
        machines: BTreeMap::new(),
        languages: BTreeMap::new(),
        dates: dates.into_iter().collect(),
    };
    for row in xp {
        // Pulses of a deleted machine may outlive it until ClickHouse's
        // asynchronous delete has run; they no longer count.
        let Some(machine) = machine_names.get(&row.machine_id) else {
            continue;
        };
        stats.total_xp += row.xp;
        stats.new_xp += row.new_xp;
        for pair in [
            stats.machines.entry(machine.clone()).or_default(),
            stats.languages.entry(row.language).or_default(),
        ] {
            pair.xps += row.xp;
            pair.new_xps += row.new_xp;
        }
    }
    Ok(Json(stats))
}
