//! The limits of the pulse API, in one place. README.md documents each.

use std::time::Duration;

/// Largest request body accepted by `POST /api/my/pulses` (413 above).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most XP items (languages) in one pulse.
pub const MAX_XPS_PER_PULSE: usize = 100;
/// Most XP in one item; a real plugin sends tens to hundreds every 10 s.
pub const MAX_XP_PER_ITEM: u64 = 100_000;
/// Oldest `coded_at` accepted, as Code::Stats: 7 days.
pub const MAX_PULSE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Largest UTC offset accepted, in minutes (real zones span −12:00 to +14:00).
pub const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;
/// Sustained pulses per minute a token may send. Plugins send at most one
/// pulse per ~10 s (6 a minute); this is 100× that.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 600;
/// Pulses a token may send in a burst on top of the sustained rate (a plugin
/// catching up after an outage).
pub const DEFAULT_RATE_BURST: u32 = 120;
/// Longest a pulse may wait in the log's queue. Past it the request is
/// answered 503 and the pulse is not written; once its group is being
/// written, the request waits for the outcome (one write and one fsync).
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(10);
