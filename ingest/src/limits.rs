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

/// Largest request body accepted by the WakaTime heartbeat API (413 above).
/// A client's offline queue is sent in requests of 25 to 100 heartbeats of
/// well under 1 KiB each.
pub const MAX_HEARTBEAT_BODY_BYTES: usize = 2 << 20;
/// Most heartbeats in one request (400 above).
pub const MAX_HEARTBEATS_PER_REQUEST: usize = 1_000;
/// Heartbeats older than this are answered 201 and not stored, so an
/// offline queue that waited too long drains instead of jamming. History
/// comes in through `codestats import`.
pub const MAX_HEARTBEAT_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How far ahead of the server's clock a heartbeat may be (a skewed
/// client); later ones are refused.
pub const MAX_HEARTBEAT_FUTURE: Duration = Duration::from_secs(3600);
/// Longest text field of a heartbeat (project, branch, language, type,
/// category, User-Agent), in characters; an entity may be 4× as long.
pub const MAX_HEARTBEAT_FIELD_CHARS: usize = 1024;
/// Ids of the most recent heartbeats remembered, so a copy sent again
/// (a client retrying after a lost answer) is not logged twice.
pub const RECENT_HEARTBEATS: usize = 1 << 20;
