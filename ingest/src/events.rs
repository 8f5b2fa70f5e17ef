//! The in-process broadcast of accepted pulses, for the live feed.
//!
//! Publishing never blocks: a `tokio::sync::broadcast` channel keeps the last
//! [`EVENT_BUFFER`] events and a subscriber that falls further behind skips
//! ahead (it sees `Lagged`), so a slow subscriber costs ingest nothing.

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events kept for subscribers that are momentarily behind.
pub const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct XpItem {
    pub language: String,
    pub xp: u32,
}

/// One accepted pulse.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PulseEvent {
    /// Increasing, and larger than any earlier process's; live streams use it
    /// as the event id.
    pub seq: u64,
    pub user_id: u64,
    pub username: String,
    /// Private users' events must never reach a public stream.
    pub private: bool,
    pub machine: String,
    pub xps: Vec<XpItem>,
    /// Unix seconds, UTC.
    pub coded_at: i64,
    /// The client's offset from UTC, minutes.
    pub utc_offset: i16,
}

pub type EventSender = broadcast::Sender<Arc<PulseEvent>>;

pub fn channel() -> EventSender {
    broadcast::channel(EVENT_BUFFER).0
}
