//! A user's password hash and the time before which their sessions are
//! void, in `user_secrets` (kept apart from `users`, which the jobs and
//! ingest read whole). The hash is made and checked by the caller (the web
//! crate, argon2id); this module only stores it.

use super::version_after;
use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct UserSecrets {
    pub user_id: u64,
    /// A PHC string (`$argon2id$…`); empty: no password set (users made by
    /// the CLI log in after a reset).
    pub password_hash: String,
    /// Unix nanoseconds: sessions created before this are void.
    pub sessions_after: u64,
    pub version: u64,
}

pub async fn get(db: &Db, user_id: u64) -> Result<UserSecrets> {
    let row: Option<UserSecrets> = db
        .client()
        .query(
            "SELECT user_id, password_hash, sessions_after, version \
             FROM user_secrets FINAL WHERE user_id = ? LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional()
        .await?;
    Ok(row.unwrap_or(UserSecrets {
        user_id,
        password_hash: String::new(),
        sessions_after: 0,
        version: 0,
    }))
}

async fn write(db: &Db, row: &UserSecrets) -> Result<()> {
    let mut insert = db.client().insert::<UserSecrets>("user_secrets").await?;
    insert.write(row).await?;
    insert.end().await?;
    Ok(())
}

/// Sets the password hash and voids every session created before now;
/// returns the new `sessions_after` (a session made after the call lives).
pub async fn set_password(db: &Db, user_id: u64, password_hash: &str) -> Result<u64> {
    let mut row = get(db, user_id).await?;
    let now = crate::migrate::now_nanos();
    row.password_hash = password_hash.to_owned();
    row.sessions_after = now;
    row.version = version_after(row.version, now);
    write(db, &row).await?;
    Ok(now)
}

/// Voids every session of the user created before now ("log out everywhere").
pub async fn end_sessions(db: &Db, user_id: u64) -> Result<u64> {
    let mut row = get(db, user_id).await?;
    let now = crate::migrate::now_nanos();
    row.sessions_after = now;
    row.version = version_after(row.version, now);
    write(db, &row).await?;
    Ok(now)
}
