//! The pulse fact table: one row per XP item of a pulse.

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
