//! The publisher: this node's public pulses into `live_events`, in one
//! INSERT every [`RELAY_FLUSH`](super::RELAY_FLUSH) when there is any.

use super::{
    RELAY_FLUSH, RELAY_LOOKBACK, RELAY_PENDING, RELAY_RETRY, RELAY_TIMEOUT, failed, flatten, now_ms,
};
use crate::events::PulseEvent;
use sql::{Db, live_events::LiveEvent};
use std::{collections::VecDeque, sync::Arc};
use tokio::{
    sync::broadcast::{self, error::RecvError},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// The row of an event this node accepted at `event_ms`.
fn row(node_id: u64, event_ms: u64, event: &PulseEvent) -> LiveEvent {
    LiveEvent {
        node_id,
        event_ms,
        seq: event.seq,
        user_id: event.user_id,
        username: event.username.clone(),
        machine: event.machine.clone(),
        coded_at: u32::try_from(event.coded_at).unwrap_or(0),
        utc_offset: event.utc_offset,
        languages: event.xps.iter().map(|x| x.language.clone()).collect(),
        xps: event.xps.iter().map(|x| x.xp).collect(),
    }
}

/// Events taken and not written yet: at most [`RELAY_PENDING`], none older
/// than [`RELAY_LOOKBACK`] when written.
#[derive(Debug, Default)]
struct Pending {
    events: VecDeque<LiveEvent>,
    /// Events dropped since the last report (full, or too old).
    dropped: u64,
}

impl Pending {
    fn push(&mut self, event: LiveEvent) {
        if self.events.len() == RELAY_PENDING {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Drops the events no poller reads any more at `now_ms`.
    fn drop_stale(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(RELAY_LOOKBACK.as_millis() as u64);
        let before = self.events.len();
        self.events.retain(|e| e.event_ms >= horizon);
        self.dropped += (before - self.events.len()) as u64;
    }
}

/// Writes this node's public events until `stop`. Private users' pulses
/// are not relayed at all (the receiving nodes check their own
/// `visibility` too).
pub(super) async fn run(
    db: Db,
    node_id: u64,
    mut events: broadcast::Receiver<Arc<PulseEvent>>,
    stop: CancellationToken,
) {
    let mut pending = Pending::default();
    let mut tick = tokio::time::interval(RELAY_FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_try = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(event) if !event.private => pending.push(row(node_id, now_ms(), &event)),
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "live relay fell behind ingest; events not relayed");
                }
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if pending.events.is_empty() || Instant::now() < next_try {
                    continue;
                }
                pending.drop_stale(now_ms());
                if pending.dropped > 0 {
                    tracing::warn!(dropped = pending.dropped, "live relay: events too old to relay dropped");
                    pending.dropped = 0;
                }
                let insert = sql::live_events::insert(&db, pending.events.make_contiguous());
                let outcome = tokio::select! {
                    () = stop.cancelled() => return,
                    outcome = tokio::time::timeout(RELAY_TIMEOUT, insert) => outcome,
                };
                match flatten(outcome) {
                    Ok(()) => pending.events.clear(),
                    // Kept and written again: a row that landed anyway
                    // is one the pollers have seen or skip as seen.
                    Err(error) => {
                        failed("insert", &error);
                        next_try = Instant::now() + RELAY_RETRY;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::XpItem;

    fn event(seq: u64) -> LiveEvent {
        let pulse = PulseEvent {
            seq,
            user_id: 1,
            username: "u".into(),
            private: false,
            machine: "m".into(),
            xps: vec![
                XpItem {
                    language: "Rust".into(),
                    xp: 3,
                },
                XpItem {
                    language: "Go".into(),
                    xp: 4,
                },
            ],
            coded_at: 1_700_000_000,
            utc_offset: 60,
        };
        row(9, 10_000 + seq, &pulse)
    }

    #[test]
    fn a_row_carries_the_items_in_order() {
        let row = event(5);
        assert_eq!((row.node_id, row.seq, row.event_ms), (9, 5, 10_005));
        assert_eq!(row.languages, ["Rust", "Go"]);
        assert_eq!(row.xps, [3, 4]);
    }

    #[test]
    fn pending_events_are_bounded_and_dropped_when_stale() {
        let mut pending = Pending::default();
        for seq in 0..RELAY_PENDING as u64 + 3 {
            pending.push(event(seq));
        }
        assert_eq!(pending.events.len(), RELAY_PENDING);
        assert_eq!(pending.events[0].seq, 3, "the oldest go first");
        assert_eq!(pending.dropped, 3);
        // At 10,100 + the lookback, the events of 10,100 and after are kept.
        pending.drop_stale(10_100 + RELAY_LOOKBACK.as_millis() as u64);
        assert_eq!(pending.events[0].seq, 100);
        assert_eq!(pending.dropped, 100);
    }
}
