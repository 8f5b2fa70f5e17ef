//! A user's own pulses, read back for their export, as a stream.

use crate::{db::Db, error::Result};
use clickhouse::{Row, query::RowCursor};
use serde::{Deserialize, Serialize};

/// One XP item of a pulse, as exported.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct ExportRow {
    /// Unix seconds, UTC.
    pub coded_at: u32,
    /// Minutes east of UTC.
    pub utc_offset: i16,
    pub language: String,
    pub machine_id: u64,
    pub xp: u32,
}

/// Every pulse item of `user_id`, oldest first, read as the caller goes:
/// only the rows in flight are in memory.
pub fn user_pulses(db: &Db, user_id: u64) -> Result<RowCursor<ExportRow>> {
    Ok(db
        .client()
        .query(
            "SELECT coded_at, utc_offset, language, machine_id, xp FROM pulses \
             WHERE user_id = ? ORDER BY coded_at, machine_id, language",
        )
        .bind(user_id)
        .fetch::<ExportRow>()?)
}
