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
