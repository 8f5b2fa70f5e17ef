//! The live relay: several nodes (`serve` processes) that share nothing but
//! ClickHouse show every node's pulses on their live feeds.
//!
//! With `IngestConfig::live_relay` on, a node takes a random id at start
//! ([`Relay::start`]) and runs three tasks:
//!
//! - the publisher (`publish.rs`) subscribes to this node's `events` and
//!   writes each public pulse to `live_events`, in one INSERT every
//!   [`RELAY_FLUSH`] when there is anything to write;
//! - the poller (`poll.rs`) reads the other nodes' events of the last
//!   [`RELAY_LOOKBACK`] every [`RELAY_POLL`], skips those it handed over
//!   already, and hands the rest to the live hub ([`crate::live::Live`])
//!   as this node's own are handed: numbered by this node, shown only to
//!   whom this node's `visibility` allows when they are handed out. They
//!   never go to `events`, so nothing is relayed twice and no rollup mark
//!   is made for another node's pulse;
//! - housekeeping deletes events older than [`RELAY_KEEP`] every
//!   [`RELAY_HOUSEKEEPING`].
//!
//! A pulse is on the other nodes' feeds within about
//! `RELAY_FLUSH + RELAY_POLL` plus two queries. The relay is best-effort,
//! as the feed is: a ClickHouse request that fails or takes longer than
//! [`RELAY_TIMEOUT`] is logged and tried again after [`RELAY_RETRY`], and
//! an event that cannot be written before it is [`RELAY_LOOKBACK`] old is
//! dropped (no poller reads that far back). Ingest never waits for the
//! relay: the publisher is one more subscriber of `events`, which skips
//! ahead when it falls behind.

mod poll;
mod publish;

use crate::{Stats, events::EventSender, live::Live, ship::now_millis as now_ms};
use sql::Db;
use std::{sync::Arc, time::Duration};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the publisher writes the events taken since its last INSERT.
pub const RELAY_FLUSH: Duration = Duration::from_millis(200);
/// How often the poller reads the other nodes' events.
pub const RELAY_POLL: Duration = Duration::from_millis(400);
/// How far back each poll reads, before the reading node's clock: covers
/// the time from an event's `event_ms` to its row being readable (the
/// flush interval and the INSERT) and the clock skew between nodes.
pub const RELAY_LOOKBACK: Duration = Duration::from_secs(5);
/// Most events one poll reads (the newest); a burst above it per poll is
/// partly skipped.
pub const RELAY_POLL_ROWS: u64 = 10_000;
/// Most events the publisher holds while its INSERTs fail; past it the
/// oldest are dropped.
pub const RELAY_PENDING: usize = crate::events::EVENT_BUFFER;
/// Longest one ClickHouse request of the relay may take.
pub const RELAY_TIMEOUT: Duration = Duration::from_secs(3);
/// The wait after a failed request before the next one.
pub const RELAY_RETRY: Duration = Duration::from_secs(1);
/// How long events are kept in `live_events`.
pub const RELAY_KEEP: Duration = Duration::from_secs(600);
/// How often a node deletes events older than [`RELAY_KEEP`] (at start,
/// then at this interval).
pub const RELAY_HOUSEKEEPING: Duration = Duration::from_secs(300);

/// The relay of one node.
#[derive(Debug, Clone, Copy)]
pub struct Relay {
    /// This node's id in `live_events`: random, new in every process.
    pub node_id: u64,
}

impl Relay {
    /// Takes a node id and starts the publisher (subscribed before this
    /// returns, so it misses no event sent after), the poller and
    /// housekeeping, until `stop`.
    pub fn start(
        db: &Db,
        events: &EventSender,
        live: Arc<Live>,
        stats: Arc<Stats>,
        stop: &CancellationToken,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let node_id = rand::random::<u64>().max(1);
        tracing::info!(node_id, "live relay on");
        let tasks = vec![
            tokio::spawn(publish::run(
                db.clone(),
                node_id,
                events.subscribe(),
                stop.clone(),
            )),
            tokio::spawn(poll::run(db.clone(), node_id, live, stats, stop.clone())),
            tokio::spawn(housekeeping(db.clone(), stop.clone())),
        ];
        (Self { node_id }, tasks)
    }
}

/// Deletes old events every [`RELAY_HOUSEKEEPING`] until `stop`.
async fn housekeeping(db: Db, stop: CancellationToken) {
    let mut tick = tokio::time::interval(RELAY_HOUSEKEEPING);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let before = now_ms().saturating_sub(RELAY_KEEP.as_millis() as u64);
        let delete = sql::live_events::delete_before(&db, before);
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(RELAY_TIMEOUT, delete) => outcome,
        };
        if let Err(error) = flatten(outcome) {
            failed("delete", &error);
        }
    }
}

/// Why a relay request failed.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Store(#[from] sql::Error),
    #[error("no answer within {} ms", RELAY_TIMEOUT.as_millis())]
    TimedOut,
}

/// A request's outcome under [`RELAY_TIMEOUT`].
fn flatten<T>(
    outcome: Result<sql::Result<T>, tokio::time::error::Elapsed>,
) -> Result<T, RelayError> {
    Ok(outcome.map_err(|_| RelayError::TimedOut)??)
}

/// Logs and counts a failed relay request; `op` says which.
fn failed(op: &'static str, error: &RelayError) {
    crate::metrics::clickhouse_error("relay");
    tracing::warn!(op, error = %error, "live relay: clickhouse request failed; retrying");
}
