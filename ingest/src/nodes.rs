//! Several nodes on one store: each node's insertion watermark, shared
//! through ClickHouse (`sql::nodes`), so the builder's incremental rollups
//! never read past a block another node still has in flight.
//!
//! A node's id is kept in `DATA_DIR/node_id`, so a restarted node is the
//! same node (its stale report does not hold the rollups back).

use crate::ship::Watermark;
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};
use tokio::task::JoinHandle;

/// How often a node reports its watermark, and how often the builder reads
/// the others'.
pub const REPORT_EVERY: Duration = Duration::from_secs(2);
/// A node silent this long is left out of the lowest watermark: a block it
/// held in flight when it went away reaches the pages at the next full
/// rollup (nightly), or when it comes back and ships it.
pub const SILENT_AFTER: Duration = Duration::from_secs(600);
/// Reports of nodes silent this long are deleted.
pub const FORGET_AFTER: Duration = Duration::from_secs(7 * 86_400);
/// The file a node's id is kept in, in the data dir.
pub const NODE_ID_FILE: &str = "node_id";

/// This node's id: read from `DATA_DIR/node_id`, made on first use.
pub fn node_id(data_dir: &Path) -> std::io::Result<u64> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold a node id", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = rand::random::<u64>().max(1);
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, format!("{id}\n"))?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// Reports `watermark` as node `node_id`'s every [`REPORT_EVERY`].
pub fn report(db: sql::Db, node_id: u64, watermark: Arc<Watermark>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REPORT_EVERY);
        let mut forgot = 0u32;
        loop {
            tick.tick().await;
            let now = crate::ship::now_secs();
            if let Err(e) = sql::nodes::report(&db, node_id, watermark.settled_before(), now).await
            {
                tracing::debug!(error = %e, "cannot report this node's watermark yet");
                crate::metrics::clickhouse_error("nodes");
            }
            if now.saturating_sub(forgot) > 86_400 {
                forgot = now;
                let before = now.saturating_sub(FORGET_AFTER.as_secs() as u32);
                if let Err(e) = sql::nodes::forget_silent(&db, before).await {
                    tracing::debug!(error = %e, "cannot forget silent nodes");
                }
            }
        }
    })
}

/// The lowest watermark of the other nodes, read every [`REPORT_EVERY`].
#[derive(Debug)]
pub struct Others {
    /// Unix seconds; `u32::MAX` while no other node reports. Starts at 0:
    /// nothing is read past until the others are known.
    lowest: AtomicU32,
}

impl Others {
    /// Starts following the other nodes' reports (the first read done
    /// before it returns).
    pub async fn follow(db: sql::Db, node_id: u64) -> (Arc<Self>, JoinHandle<()>) {
        let others = Arc::new(Self {
            lowest: AtomicU32::new(0),
        });
        others.read(&db, node_id).await;
        let shared = others.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REPORT_EVERY);
            loop {
                tick.tick().await;
                shared.read(&db, node_id).await;
            }
        });
        (others, task)
    }

    async fn read(&self, db: &sql::Db, node_id: u64) {
        let alive_since = crate::ship::now_secs().saturating_sub(SILENT_AFTER.as_secs() as u32);
        match sql::nodes::lowest_watermark(db, alive_since, node_id).await {
            Ok(lowest) => self
                .lowest
                .store(lowest.unwrap_or(u32::MAX), Ordering::Release),
            // The last value holds: rollups wait rather than skip.
            Err(e) => tracing::debug!(error = %e, "cannot read the other nodes' watermarks"),
        }
    }

    /// The lowest watermark of the other nodes (`u32::MAX`: none).
    pub fn lowest(&self) -> u32 {
        self.lowest.load(Ordering::Acquire)
    }
}
