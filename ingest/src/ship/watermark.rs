//! The insertion watermark the rollups read up to.

use super::now_secs;
use std::sync::Mutex;

/// The time before which every block is settled (in ClickHouse, or
/// known never to land), for the rollups' incremental runs.
#[derive(Debug, Default)]
pub struct Watermark {
    inner: Mutex<WatermarkInner>,
}

#[derive(Debug, Default)]
struct WatermarkInner {
    /// `received_at` of the block being written.
    in_flight: Option<u32>,
    /// The latest `received_at` given out: they never go back.
    last: u32,
}

impl Watermark {
    /// Every block with `received_at` below this is in ClickHouse (or
    /// will never be).
    pub fn settled_before(&self) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.in_flight {
            Some(at) => at,
            None => {
                // A later block must not get a `received_at` below what was
                // handed out here, even if the clock steps back.
                inner.last = now_secs().max(inner.last);
                inner.last
            }
        }
    }

    /// The `received_at` of a new block, which is in flight from now on.
    pub(super) fn begin(&self) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let at = now_secs().max(inner.last);
        inner.last = at;
        inner.in_flight = Some(at);
        at
    }

    /// A block of a previous process is in flight again.
    pub(super) fn resume(&self, received_at: u32) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.last = inner.last.max(received_at);
        inner.in_flight = Some(received_at);
    }

    pub(super) fn end(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight = None;
    }
}
