//! What `codestats import` asks the store: which rows of a chunk are there
//! already (ids are derived from the rows, so a second import finds them
//! all), and whether a chunk's hourly aggregates landed.

use crate::{db::Db, error::Result};

/// The ids among `ids` of `user_id`'s heartbeats between `from` and `to`
/// (Unix seconds, inclusive) that are stored.
pub async fn stored_heartbeats(
    db: &Db,
    user_id: u64,
    from: u32,
    to: u32,
    ids: &[u64],
) -> Result<Vec<u64>> {
    stored(
        db,
        "heartbeats",
        "heartbeat_id",
        "time",
        user_id,
        from,
        to,
        ids,
    )
    .await
}

/// The ids among `ids` of `user_id`'s pulses coded between `from` and `to`
/// that are stored.
pub async fn stored_pulses(
    db: &Db,
    user_id: u64,
    from: u32,
    to: u32,
    ids: &[u64],
) -> Result<Vec<u64>> {
    stored(db, "pulses", "pulse_id", "coded_at", user_id, from, to, ids).await
}

#[allow(clippy::too_many_arguments)]
async fn stored(
    db: &Db,
    table: &str,
    id_column: &str,
    time_column: &str,
    user_id: u64,
    from: u32,
    to: u32,
    ids: &[u64],
) -> Result<Vec<u64>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    // Table and column names come from code; values are bound.
    let sql = format!(
        "SELECT DISTINCT {id_column} FROM {table} WHERE user_id = ? \
         AND {time_column} >= toDateTime(?) AND {time_column} <= toDateTime(?) \
         AND {id_column} IN ({})",
        crate::db::placeholders(ids.len())
    );
    let mut query = db.client().query(&sql).bind(user_id).bind(from).bind(to);
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all().await?)
}

/// Whether the `xp_hourly` rows of block `block_id` landed (its marker is
/// there, whatever month it was received in).
pub async fn xp_marker_landed(db: &Db, block_id: u64) -> Result<bool> {
    let found: u64 = db
        .client()
        .query("SELECT count() FROM xp_hourly WHERE user_id = 0 AND machine_id = ? AND marker > 0")
        .bind(block_id)
        .fetch_one()
        .await?;
    Ok(found > 0)
}
