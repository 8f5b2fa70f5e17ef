//! The pulse fact table: one row per XP item of a pulse.

use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// A row of `pulses`, as inserted.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PulseRow {
    pub pulse_id: u64,
    /// The id of the block that wrote the row.
    pub batch_id: u64,
    pub user_id: u64,
    pub machine_id: u64,
    /// Unix seconds, UTC.
    pub coded_at: u32,
    /// The client's offset from UTC, minutes.
    pub utc_offset: i16,
    pub language: String,
    pub xp: u32,
    /// Unix seconds, UTC: when the block that wrote the row was formed (the
    /// insertion watermark's clock).
    pub received_at: u32,
}

/// Inserts rows in one INSERT, and nothing into `xp_hourly`: acknowledged
/// pulses go through `blocks` (the shipper), seeds and tests through
/// `blocks::insert_unshipped`.
pub async fn insert(db: &Db, rows: &[PulseRow]) -> Result<()> {
    let mut insert = db.client().insert::<PulseRow>("pulses").await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}
