//! Blocks: how ingest's shipper writes pulses so that each lands exactly
//! once, and `xp_hourly` with them.
//!
//! A block is a set of pulse rows with one id and one `received_at`. Both
//! tables are partitioned by the month of `received_at`, and a block stays
//! under ClickHouse's `max_insert_block_size`, so each of the block's two
//! INSERTs (pulses, then its `xp_hourly` rows) makes one part: it lands
//! whole or not at all. Each INSERT runs with a `query_id` made from the
//! block id; after a failure the shipper ends that query ([`kill`]) and then
//! asks whether it landed ([`pulses_landed`], [`xp_landed`]).
//!
//! In cluster mode the shipper calls these once per shard, with that
//! shard's server (`Db::shards`) and the block's rows on it: names are
//! that server's local tables ([`Db::table`]), so each shard's part is one
//! INSERT there, whole or absent, found and ended there by its query id,
//! with its own marker.

use crate::{db::Db, error::Result, pulses::PulseRow};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A row of `xp_hourly`: XP per user, local hour, machine and language of
/// the pulses one block brought, or the block's marker.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct XpRow {
    /// `YYYYMM` of the block's `received_at` (UTC): the partition.
    pub received_month: u32,
    /// 0 in a marker row.
    pub user_id: u64,
    /// Days since 1970-01-01 of the coder's local time.
    pub local_date: u16,
    pub local_hour: u8,
    /// The block id in a marker row.
    pub machine_id: u64,
    pub language: String,
    pub xp: u64,
    /// 1 in a marker row, 0 otherwise.
    pub marker: u8,
}

/// A row written as part of a block: it carries the block's id and
/// `received_at`.
pub trait BlockRow {
    fn set_block(&mut self, block_id: u64, received_at: u32);
}

impl BlockRow for PulseRow {
    fn set_block(&mut self, block_id: u64, received_at: u32) {
        self.batch_id = block_id;
        self.received_at = received_at;
    }
}

impl BlockRow for crate::heartbeats::HeartbeatRow {
    fn set_block(&mut self, block_id: u64, received_at: u32) {
        self.batch_id = block_id;
        self.received_at = received_at;
    }
}

/// `rows`, each stamped with the block's id and `received_at`.
pub fn stamp<R: BlockRow>(mut rows: Vec<R>, block_id: u64, received_at: u32) -> Vec<R> {
    for row in &mut rows {
        row.set_block(block_id, received_at);
    }
    rows
}

/// The `query_id` of a block's pulses INSERT.
pub fn pulses_query_id(block_id: u64) -> String {
    format!("codestats-pulses-{block_id:016x}")
}

/// The `query_id` of a block's `xp_hourly` INSERT.
pub fn xp_query_id(block_id: u64) -> String {
    format!("codestats-xp-{block_id:016x}")
}

/// `YYYYMM` of a Unix time, UTC.
pub fn month_of(secs: u32) -> u32 {
    chrono::DateTime::from_timestamp(i64::from(secs), 0)
        .map(|d| {
            use chrono::Datelike;
            d.year() as u32 * 100 + d.month()
        })
        .unwrap_or(197001)
}

/// The `xp_hourly` rows of `rows` (each row's own `received_at` month),
/// summed per key, in key order.
pub fn xp_rows(rows: &[PulseRow]) -> Vec<XpRow> {
    let mut sums: BTreeMap<(u32, u64, u16, u8, u64, &str), u64> = BTreeMap::new();
    for row in rows {
        let local = i64::from(row.coded_at) + i64::from(row.utc_offset) * 60;
        let days = local.div_euclid(86_400);
        let hour = (local.rem_euclid(86_400) / 3_600) as u8;
        let key = (
            month_of(row.received_at),
            row.user_id,
            days.clamp(0, i64::from(u16::MAX)) as u16,
            hour,
            row.machine_id,
            row.language.as_str(),
        );
        *sums.entry(key).or_default() += u64::from(row.xp);
    }
    sums.into_iter()
        .map(
            |((received_month, user_id, local_date, local_hour, machine_id, language), xp)| XpRow {
                received_month,
                user_id,
                local_date,
                local_hour,
                machine_id,
                language: language.to_owned(),
                xp,
                marker: 0,
            },
        )
        .collect()
}

/// The marker row of block `block_id` received at `received_at`.
pub fn marker(block_id: u64, received_at: u32) -> XpRow {
    XpRow {
        received_month: month_of(received_at),
        user_id: 0,
        local_date: (received_at / 86_400) as u16,
        local_hour: 0,
        machine_id: block_id,
        language: String::new(),
        xp: 0,
        marker: 1,
    }
}

/// Inserts a block's pulses (every row carries the block's id and
/// `received_at`) in one INSERT named [`pulses_query_id`].
pub async fn insert_pulses(db: &Db, block_id: u64, rows: &[PulseRow]) -> Result<()> {
    let mut insert = db
        .client()
        .insert::<PulseRow>(&db.table("pulses"))
        .await?
        .with_setting("query_id", pulses_query_id(block_id));
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Inserts a block's `xp_hourly` rows and its marker in one INSERT named
/// [`xp_query_id`].
pub async fn insert_xp(db: &Db, block_id: u64, received_at: u32, rows: &[PulseRow]) -> Result<()> {
    let mut insert = db
        .client()
        .insert::<XpRow>(&db.table("xp_hourly"))
        .await?
        .with_setting("query_id", xp_query_id(block_id));
    for row in xp_rows(rows) {
        insert.write(&row).await?;
    }
    insert.write(&marker(block_id, received_at)).await?;
    insert.end().await?;
    Ok(())
}

/// Ends the query `query_id` if it is running, and returns once it no longer
/// is (`KILL QUERY … SYNC`). After this a query that has not landed never
/// will.
pub async fn kill(db: &Db, query_id: &str) -> Result<()> {
    db.client()
        .query("KILL QUERY WHERE query_id = ? SYNC FORMAT Null")
        .bind(query_id)
        .execute()
        .await?;
    Ok(())
}

/// Whether block `block_id` is in `pulses`. `users` are some users the block
/// has rows of (the primary key narrows the search to them); since a block
/// lands whole or not at all, one row found is the whole block.
pub async fn pulses_landed(
    db: &Db,
    block_id: u64,
    received_at: u32,
    users: &[u64],
) -> Result<bool> {
    if users.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT count() FROM {} WHERE user_id IN ({}) \
         AND received_at = toDateTime(?) AND batch_id = ?",
        db.table("pulses"),
        crate::db::placeholders(users.len())
    );
    let mut query = db.client().query(&sql);
    for user in users {
        query = query.bind(*user);
    }
    let found: u64 = query.bind(received_at).bind(block_id).fetch_one().await?;
    Ok(found > 0)
}

/// Whether block `block_id`'s `xp_hourly` INSERT landed (its marker is there).
pub async fn xp_landed(db: &Db, block_id: u64, received_at: u32) -> Result<bool> {
    // Its whole key: one point in the primary key.
    let marker = marker(block_id, received_at);
    let sql = format!(
        "SELECT count() FROM {} WHERE user_id = 0 AND local_date = toDate(?) \
         AND local_hour = 0 AND machine_id = ? AND received_month = ? AND marker > 0",
        db.table("xp_hourly")
    );
    let found: u64 = db
        .client()
        .query(&sql)
        .bind(
            chrono::DateTime::from_timestamp(i64::from(marker.local_date) * 86_400, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string(),
        )
        .bind(block_id)
        .bind(marker.received_month)
        .fetch_one()
        .await?;
    Ok(found > 0)
}

/// Writes rows to `pulses` and their aggregates to `xp_hourly`, without the
/// shipper's guarantees: for seeding and tests, never for acknowledged
/// pulses.
pub async fn insert_unshipped(db: &Db, rows: &[PulseRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    crate::pulses::insert(db, rows).await?;
    let mut insert = db.client().insert::<XpRow>("xp_hourly").await?;
    for row in xp_rows(rows) {
        insert.write(&row).await?;
    }
    insert.end().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user_id: u64, coded_at: u32, utc_offset: i16, language: &str, xp: u32) -> PulseRow {
        PulseRow {
            pulse_id: 1,
            batch_id: 7,
            user_id,
            machine_id: 3,
            coded_at,
            utc_offset,
            language: language.into(),
            xp,
            received_at: 1_706_745_600, // 2024-02-01 00:00:00 UTC
        }
    }

    #[test]
    fn xp_rows_sum_per_local_hour() {
        // 2024-01-31 23:30 UTC, +60 min: local 2024-02-01 00:30.
        let t = 1_706_743_800;
        let rows = [
            row(5, t, 60, "Rust", 10),
            row(5, t + 60, 60, "Rust", 5),
            row(5, t, 0, "Rust", 1),
            row(6, t, -600, "Go", 2),
        ];
        let xp = xp_rows(&rows);
        let feb_1 = (1_706_745_600 / 86_400) as u16;
        assert_eq!(xp.len(), 3);
        assert_eq!(
            (xp[0].local_date, xp[0].local_hour, xp[0].xp),
            (feb_1 - 1, 23, 1)
        );
        assert_eq!(
            (xp[1].local_date, xp[1].local_hour, xp[1].xp),
            (feb_1, 0, 15)
        );
        assert_eq!((xp[2].user_id, xp[2].local_hour, xp[2].xp), (6, 13, 2));
        assert!(
            xp.iter()
                .all(|r| r.received_month == 202402 && r.marker == 0)
        );
    }

    #[test]
    fn marker_is_keyed_by_block() {
        let m = marker(0xabc, 1_706_745_600);
        assert_eq!((m.user_id, m.machine_id, m.marker, m.xp), (0, 0xabc, 1, 0));
        assert_eq!(m.received_month, 202402);
    }
}
