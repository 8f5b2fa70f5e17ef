//! What a user chose about their public presence beyond going private, in
//! `user_preferences` (no row: the defaults). Today one choice: whether
//! they are listed on the leaderboards.

use super::{User, bump};
use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Preferences {
    pub user_id: u64,
    /// 1: listed on the leaderboards (the default).
    pub leaderboards: u8,
    pub version: u64,
}

impl Preferences {
    /// A user's preferences before they changed any.
    pub fn defaults(user_id: u64) -> Self {
        Self {
            user_id,
            leaderboards: 1,
            version: 0,
        }
    }

    pub fn on_leaderboards(&self) -> bool {
        self.leaderboards != 0
    }
}

/// `user_id`'s preferences.
pub async fn of_user(db: &Db, user_id: u64) -> Result<Preferences> {
    let found: Option<Preferences> = db
        .client()
        .query(
            "SELECT user_id, leaderboards, version FROM user_preferences FINAL \
             WHERE user_id = ? LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional()
        .await?;
    Ok(found.unwrap_or_else(|| Preferences::defaults(user_id)))
}

/// Lists `user` on the leaderboards or leaves them off.
pub async fn set_leaderboards(db: &Db, user: &User, listed: bool) -> Result<Preferences> {
    let mut prefs = of_user(db, user.user_id).await?;
    prefs.leaderboards = listed.into();
    prefs.version = bump(prefs.version);
    let mut insert = db
        .client()
        .insert::<Preferences>("user_preferences")
        .await?;
    insert.write(&prefs).await?;
    insert.end().await?;
    Ok(prefs)
}

/// Every user who left the leaderboards.
pub async fn off_leaderboards(db: &Db) -> Result<Vec<u64>> {
    Ok(db
        .client()
        .query("SELECT user_id FROM user_preferences FINAL WHERE leaderboards = 0")
        .fetch_all()
        .await?)
}
