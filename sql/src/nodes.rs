//! The nodes that share the store and their insertion watermarks
//! (`migrations/0008_nodes.sql`): each ingest node reports the time before
//! which every block it took in is settled; the builder's incremental
//! rollups read no further than the lowest of them.

use crate::{db::Db, error::Result, migrate::now_nanos};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct NodeRow {
    node_id: u64,
    /// Unix seconds.
    settled_before: u32,
    /// Unix seconds, the node's clock.
    reported_at: u32,
    version: u64,
}

/// Notes that every block node `node_id` took in before `settled_before`
/// (unix seconds) is in ClickHouse.
pub async fn report(db: &Db, node_id: u64, settled_before: u32, now: u32) -> Result<()> {
    let mut insert = db.client().insert::<NodeRow>("nodes").await?;
    insert
        .write(&NodeRow {
            node_id,
            settled_before,
            reported_at: now,
            version: now_nanos(),
        })
        .await?;
    insert.end().await?;
    Ok(())
}

/// The lowest watermark of the nodes that reported at or after
/// `alive_since` (unix seconds), except `except` (the caller, who knows its
/// own better); `None` when there is none.
pub async fn lowest_watermark(db: &Db, alive_since: u32, except: u64) -> Result<Option<u32>> {
    let (lowest, nodes): (u32, u64) = db
        .client()
        .query(
            "SELECT toUInt32(min(settled)), count() FROM \
             (SELECT node_id, argMax(settled_before, version) AS settled, \
                     max(reported_at) AS last \
              FROM nodes WHERE node_id != ? GROUP BY node_id HAVING last >= toDateTime(?))",
        )
        .bind(except)
        .bind(alive_since)
        .fetch_one()
        .await?;
    Ok((nodes > 0).then_some(lowest))
}

/// Drops the reports of nodes silent since `before` (housekeeping).
pub async fn forget_silent(db: &Db, before: u32) -> Result<()> {
    db.delete_where("nodes", "reported_at < toDateTime(?)", before)
        .await
}
