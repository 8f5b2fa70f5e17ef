//! `live_events`: the live relay's table. Each ingest node with the relay
//! on writes the pulses it accepted, and reads the other nodes' to show
//! them on its own live feed (see `ingest::relay`).

use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// The table's name.
pub const TABLE: &str = "live_events";

/// One accepted pulse, as relayed to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LiveEvent {
    /// The random id of the node (process) that accepted the pulse.
    pub node_id: u64,
    /// Unix milliseconds, the accepting node's clock when it took the event.
    pub event_ms: u64,
    /// The event's number on its node: `(node_id, seq)` names an event.
    pub seq: u64,
    pub user_id: u64,
    pub username: String,
    /// The machine's name.
    pub machine: String,
    /// Unix seconds, UTC.
    pub coded_at: u32,
    /// The client's offset from UTC, minutes.
    pub utc_offset: i16,
    /// The pulse's languages, in order, each with its XP at the same index
    /// of `xps`.
    pub languages: Vec<String>,
    pub xps: Vec<u32>,
}

/// Writes `events` in one INSERT (nothing when there are none).
pub async fn insert(db: &Db, events: &[LiveEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = db.client().insert::<LiveEvent>(TABLE).await?;
    for event in events {
        insert.write(event).await?;
    }
    insert.end().await?;
    Ok(())
}

/// The newest `limit` events at or after `since_ms` (unix milliseconds) of
/// every node but `node_id`, oldest first.
pub async fn since(db: &Db, since_ms: u64, node_id: u64, limit: u64) -> Result<Vec<LiveEvent>> {
    let mut events = db
        .client()
        .query(
            "SELECT ?fields FROM live_events \
             WHERE event_ms >= ? AND node_id != ? \
             ORDER BY event_ms DESC, node_id DESC, seq DESC LIMIT ?",
        )
        .bind(since_ms)
        .bind(node_id)
        .bind(limit)
        .fetch_all::<LiveEvent>()
        .await?;
    events.reverse();
    Ok(events)
}

/// Deletes the events before `before_ms` (unix milliseconds), on every
/// server of a cluster (a mutation: gone within moments).
pub async fn delete_before(db: &Db, before_ms: u64) -> Result<()> {
    db.delete_where(TABLE, "event_ms < ?", before_ms).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(node_id: u64, event_ms: u64, seq: u64) -> LiveEvent {
        LiveEvent {
            node_id,
            event_ms,
            seq,
            user_id: 7,
            username: "Zoë".into(),
            machine: "laptop".into(),
            coded_at: 1_700_000_000,
            utc_offset: -330,
            languages: vec!["Rust".into(), "C++".into()],
            xps: vec![12, 3],
        }
    }

    #[tokio::test]
    async fn reads_other_nodes_events_since_a_time_and_deletes_old_ones() {
        let db = crate::test_db!();
        insert(&db, &[]).await.unwrap();
        let events = [
            event(1, 1_000, 1),
            event(2, 2_000, 1),
            event(1, 3_000, 2),
            event(2, 4_000, 2),
            event(3, 5_000, 1),
        ];
        insert(&db, &events).await.unwrap();
        // Not node 1's own, from 2 s on, oldest first, round trip exact.
        assert_eq!(
            since(&db, 2_000, 1, 100).await.unwrap(),
            [events[1].clone(), events[3].clone(), events[4].clone()]
        );
        // The newest ones when there are more than the limit.
        assert_eq!(
            since(&db, 0, 1, 2).await.unwrap(),
            [events[3].clone(), events[4].clone()]
        );
        delete_before(&db, 4_000).await.unwrap();
        // A mutation is asynchronous: wait for it.
        let mut left = Vec::new();
        for _ in 0..100 {
            left = since(&db, 0, 0, 100).await.unwrap();
            if left.len() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(left, [events[3].clone(), events[4].clone()]);
    }
}
