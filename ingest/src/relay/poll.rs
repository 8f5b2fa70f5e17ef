//! The poller: the other nodes' events from `live_events` to this node's
//! live hub, each once.

use super::{
    RELAY_LOOKBACK, RELAY_POLL, RELAY_POLL_ROWS, RELAY_RETRY, RELAY_TIMEOUT, failed, flatten,
    now_ms,
};
use crate::{
    Stats,
    events::{PulseEvent, XpItem},
    live::Live,
};
use sql::{Db, live_events::LiveEvent};
use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
};
use tokio_util::sync::CancellationToken;

/// Most events [`Seen`] remembers: enough that an event it forgot is never
/// among the newest [`RELAY_POLL_ROWS`] a poll returns.
pub const RELAY_SEEN: usize = 2 * RELAY_POLL_ROWS as usize;

/// The events handed to the hub that a poll may return again: those at or
/// after the last poll's start, at most [`RELAY_SEEN`] (the newest).
#[derive(Debug, Default)]
struct Seen {
    /// `(node_id, seq)`.
    ids: HashSet<(u64, u64)>,
    /// `(event_ms, node_id, seq)`, in the order polls sort them.
    by_time: BTreeSet<(u64, u64, u64)>,
}

impl Seen {
    /// Whether `event` is new; remembers it.
    fn first(&mut self, event: &LiveEvent) -> bool {
        if !self.ids.insert((event.node_id, event.seq)) {
            return false;
        }
        self.by_time
            .insert((event.event_ms, event.node_id, event.seq));
        while self.by_time.len() > RELAY_SEEN {
            if let Some((_, node_id, seq)) = self.by_time.pop_first() {
                self.ids.remove(&(node_id, seq));
            }
        }
        true
    }

    /// Forgets the events before `since_ms`, which no poll from `since_ms`
    /// on returns.
    fn forget_before(&mut self, since_ms: u64) {
        let keep = self.by_time.split_off(&(since_ms, 0, 0));
        for (_, node_id, seq) in std::mem::replace(&mut self.by_time, keep) {
            self.ids.remove(&(node_id, seq));
        }
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Another node's event as this node's hub takes it: numbered by this
/// node. Only public pulses are relayed; the hub checks this node's
/// visibility itself.
fn event(row: LiveEvent, seq: u64) -> PulseEvent {
    PulseEvent {
        seq,
        user_id: row.user_id,
        username: row.username,
        private: false,
        machine: row.machine,
        xps: row
            .languages
            .into_iter()
            .zip(row.xps)
            .map(|(language, xp)| XpItem { language, xp })
            .collect(),
        coded_at: i64::from(row.coded_at),
        utc_offset: row.utc_offset,
    }
}

/// Hands the other nodes' new events to `live` every [`RELAY_POLL`] until
/// `stop`.
pub(super) async fn run(
    db: Db,
    node_id: u64,
    live: Arc<Live>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let mut seen = Seen::default();
    let mut tick = tokio::time::interval(RELAY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let since_ms = now_ms().saturating_sub(RELAY_LOOKBACK.as_millis() as u64);
        let read = sql::live_events::since(&db, since_ms, node_id, RELAY_POLL_ROWS);
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(RELAY_TIMEOUT, read) => outcome,
        };
        match flatten(outcome) {
            Ok(rows) => {
                seen.forget_before(since_ms);
                for row in rows {
                    if seen.first(&row) {
                        live.publish(&event(row, stats.relayed_seq()));
                    }
                }
                tracing::trace!(remembered = seen.len(), "live relay polled");
            }
            Err(error) => {
                failed("poll", &error);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RELAY_RETRY) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node_id: u64, event_ms: u64, seq: u64) -> LiveEvent {
        LiveEvent {
            node_id,
            event_ms,
            seq,
            user_id: 1,
            username: "u".into(),
            machine: "m".into(),
            coded_at: 1_700_000_000,
            utc_offset: -330,
            languages: vec!["Rust".into(), "Go".into()],
            xps: vec![3, 4],
        }
    }

    #[test]
    fn an_event_is_handed_over_once_while_polls_can_return_it() {
        let mut seen = Seen::default();
        assert!(seen.first(&row(1, 100, 1)));
        assert!(seen.first(&row(2, 100, 1)), "another node's seq 1");
        assert!(!seen.first(&row(1, 100, 1)));
        // A second copy of a row whose INSERT was retried.
        assert!(!seen.first(&row(2, 100, 1)));
        assert!(seen.first(&row(1, 200, 2)));
        seen.forget_before(150);
        assert_eq!(seen.len(), 1);
        assert!(!seen.first(&row(1, 200, 2)));
    }

    #[test]
    fn seen_is_bounded_and_forgets_the_oldest() {
        let mut seen = Seen::default();
        for seq in 0..RELAY_SEEN as u64 + 10 {
            assert!(seen.first(&row(1, seq, seq)));
        }
        assert_eq!(seen.len(), RELAY_SEEN);
        assert!(!seen.first(&row(1, 10, 10)));
        assert!(seen.first(&row(1, 9, 9)), "forgotten");
    }

    #[test]
    fn a_relayed_event_keeps_the_pulse_and_takes_this_nodes_number() {
        let e = event(row(1, 100, 7), 42);
        assert_eq!((e.seq, e.user_id, e.private), (42, 1, false));
        assert_eq!(e.coded_at, 1_700_000_000);
        assert_eq!(e.utc_offset, -330);
        assert_eq!(
            e.xps,
            [
                XpItem {
                    language: "Rust".into(),
                    xp: 3
                },
                XpItem {
                    language: "Go".into(),
                    xp: 4
                }
            ]
        );
    }
}
