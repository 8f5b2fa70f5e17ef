//! The pulse fact table: one row per XP item of a pulse.

use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// A row of `pulses`, as inserted.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PulseRow {
    pub pulse_id: u64,
    pub batch_id: u64,
    pub user_id: u64,
    pub machine_id: u64,
    /// Unix seconds, UTC.
    pub coded_at: u32,
    /// The client's offset from UTC, minutes.
    pub utc_offset: i16,
    pub language: String,
    pub xp: u32,
    /// Unix seconds, UTC: when the batch was formed.
    pub received_at: u32,
}

/// Inserts rows in one INSERT. All rows of a batch share `received_at`, so
/// they land in one partition and the insert is all or nothing.
pub async fn insert(db: &Db, rows: &[PulseRow]) -> Result<()> {
    let mut insert = db.client().insert::<PulseRow>("pulses").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

/// How many rows of each of `batch_ids` (formed between `from` and `to`)
/// ClickHouse holds; batches it holds none of are left out.
pub async fn batches_present(
    db: &Db,
    batch_ids: &[u64],
    from: u32,
    to: u32,
) -> Result<Vec<(u64, u64)>> {
    let mut query = db
        .client()
        .query(&format!(
            "SELECT batch_id, count() FROM pulses \
             WHERE received_at >= toDateTime(?) AND received_at <= toDateTime(?) \
             AND batch_id IN ({}) GROUP BY batch_id",
            crate::db::placeholders(batch_ids.len())
        ))
        .bind(from)
        .bind(to);
    if batch_ids.is_empty() {
        query = query.bind(0u64);
    }
    for id in batch_ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all().await?)
}

/// XP of one user by machine and language: all time, and since `new_since`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct MachineLanguageXp {
    pub machine_id: u64,
    pub language: String,
    pub xp: u64,
    pub new_xp: u64,
}

pub async fn user_xp(db: &Db, user_id: u64, new_since: u32) -> Result<Vec<MachineLanguageXp>> {
    Ok(db
        .client()
        .query(
            "SELECT machine_id, language, sum(xp) AS total_xp, \
                    sumIf(xp, coded_at >= toDateTime(?)) AS recent_xp \
             FROM pulses WHERE user_id = ? \
             GROUP BY machine_id, language \
             ORDER BY machine_id, language",
        )
        .bind(new_since)
        .bind(user_id)
        .fetch_all()
        .await?)
}

/// XP of one user per local date (the client's date when coding), as
/// `YYYY-MM-DD`.
pub async fn user_xp_by_local_date(db: &Db, user_id: u64) -> Result<Vec<(String, u64)>> {
    Ok(db
        .client()
        .query(
            "SELECT toString(toDate(coded_at + utc_offset * 60)) AS day, sum(xp) \
             FROM pulses WHERE user_id = ? GROUP BY day ORDER BY day",
        )
        .bind(user_id)
        .fetch_all()
        .await?)
}
