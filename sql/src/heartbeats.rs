//! The heartbeat fact table: one row per WakaTime heartbeat, written by
//! ingest's shipper block by block (as pulses, `blocks.rs`) and by imports.
//!
//! A heartbeat's id is a hash of what it says ([`heartbeat_id`]), so the
//! same heartbeat sent twice has one id; the table keeps one row per id
//! (ReplacingMergeTree) and readers that count rows use `FINAL`.

use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A row of `heartbeats`, as inserted.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct HeartbeatRow {
    pub heartbeat_id: u64,
    /// The id of the block (or import chunk) that wrote the row.
    pub batch_id: u64,
    pub user_id: u64,
    /// The machine whose token sent it.
    pub machine_id: u64,
    /// Unix seconds, UTC, and the milliseconds past them.
    pub time: u32,
    pub time_ms: u16,
    /// The coder's offset from UTC, minutes (0 when the client did not say).
    pub utc_offset: i16,
    /// [`entity_hash`] of the file path, URL or app.
    pub entity_hash: String,
    /// The entity itself, only when the operator stores them; else empty.
    pub entity: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub category: String,
    pub project: String,
    pub branch: String,
    pub language: String,
    pub is_write: u8,
    pub lines: u32,
    pub line_additions: u32,
    pub line_deletions: u32,
    pub lineno: u32,
    pub cursorpos: u32,
    pub editor: String,
    pub os: String,
    /// The machine label the client sent (`X-Machine-Name`), or the token's
    /// machine name.
    pub machine: String,
    /// Unix seconds, UTC: when the block that wrote it was formed.
    pub received_at: u32,
}

impl HeartbeatRow {
    /// Unix milliseconds.
    pub fn time_millis(&self) -> u64 {
        u64::from(self.time) * 1000 + u64::from(self.time_ms)
    }
}

/// The stored hash of an entity: SHA-256 of the user id and the entity,
/// hex. Salted by the user, so equal paths of two users do not match.
pub fn entity_hash(user_id: u64, entity: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(user_id.to_string().as_bytes());
    hasher.update(b":");
    hasher.update(entity.as_bytes());
    hex::encode(hasher.finalize())
}

/// The id of a heartbeat: the first 8 bytes of SHA-256 over what it says.
/// Fields are length-prefixed, so no two different heartbeats can spell
/// the same input.
pub fn heartbeat_id(row: &HeartbeatRow) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(row.user_id.to_le_bytes());
    hasher.update(row.time_millis().to_le_bytes());
    hasher.update([row.is_write]);
    for field in [
        &row.entity_hash,
        &row.kind,
        &row.category,
        &row.project,
        &row.branch,
        &row.language,
        &row.machine,
    ] {
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

/// The `query_id` of a block's heartbeats INSERT.
pub fn query_id(block_id: u64) -> String {
    format!("codestats-heartbeats-{block_id:016x}")
}

/// Inserts rows in one INSERT named [`query_id`] (one part: whole or absent).
pub async fn insert(db: &Db, block_id: u64, rows: &[HeartbeatRow]) -> Result<()> {
    let mut insert = db
        .client()
        .insert::<HeartbeatRow>(&db.table("heartbeats"))
        .await?
        .with_setting("query_id", query_id(block_id));
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Whether block `block_id` is in `heartbeats`. `users` are some users the
/// block has rows of (the primary key narrows the search to them).
pub async fn landed(db: &Db, block_id: u64, users: &[u64]) -> Result<bool> {
    if users.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT count() FROM {} WHERE user_id IN ({}) AND batch_id = ?",
        db.table("heartbeats"),
        crate::db::placeholders(users.len())
    );
    let mut query = db.client().query(&sql);
    for user in users {
        query = query.bind(*user);
    }
    let found: u64 = query.bind(block_id).fetch_one().await?;
    Ok(found > 0)
}

/// Stored heartbeats of a user, each once.
pub async fn count_of_user(db: &Db, user_id: u64) -> Result<u64> {
    Ok(db
        .client()
        .query("SELECT count() FROM heartbeats FINAL WHERE user_id = ?")
        .bind(user_id)
        .fetch_one()
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> HeartbeatRow {
        HeartbeatRow {
            heartbeat_id: 0,
            batch_id: 1,
            user_id: 7,
            machine_id: 8,
            time: 1_795_635_914,
            time_ms: 817,
            utc_offset: 60,
            entity_hash: entity_hash(7, "/home/me/src/main.rs"),
            entity: String::new(),
            kind: "file".into(),
            category: "coding".into(),
            project: "codestats".into(),
            branch: "main".into(),
            language: "Rust".into(),
            is_write: 1,
            lines: 10,
            line_additions: 0,
            line_deletions: 0,
            lineno: 0,
            cursorpos: 0,
            editor: "vim".into(),
            os: "Linux".into(),
            machine: "laptop".into(),
            received_at: 0,
        }
    }

    #[test]
    fn id_is_what_the_heartbeat_says() {
        let a = row();
        // Where and when it was stored does not change it…
        let mut b = a.clone();
        b.batch_id = 99;
        b.received_at = 5;
        b.lines = 11;
        assert_eq!(heartbeat_id(&a), heartbeat_id(&b));
        // …what it says does.
        for change in [
            |r: &mut HeartbeatRow| r.time_ms += 1,
            |r: &mut HeartbeatRow| r.is_write = 0,
            |r: &mut HeartbeatRow| r.project.push('x'),
            |r: &mut HeartbeatRow| r.user_id += 1,
            |r: &mut HeartbeatRow| r.machine = "other".into(),
        ] {
            let mut c = a.clone();
            change(&mut c);
            assert_ne!(heartbeat_id(&a), heartbeat_id(&c));
        }
        // Field boundaries count: "ab" + "" is not "a" + "b".
        let (mut c, mut d) = (a.clone(), a.clone());
        (c.project, c.branch) = ("ab".into(), String::new());
        (d.project, d.branch) = ("a".into(), "b".into());
        assert_ne!(heartbeat_id(&c), heartbeat_id(&d));
    }

    #[test]
    fn entity_hash_is_salted_by_user() {
        assert_ne!(entity_hash(1, "/a"), entity_hash(2, "/a"));
        assert_eq!(entity_hash(1, "/a"), entity_hash(1, "/a"));
        assert_eq!(entity_hash(1, "/a").len(), 64);
    }
}
