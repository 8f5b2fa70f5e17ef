//! Coding time: how long people coded, derived from their heartbeats.
//!
//! Per user and local day, heartbeats are taken in time order; each one
//! counts the time until the next one when that gap is at most the
//! keystroke timeout, and nothing when it is longer (the coder stopped) or
//! when it is the day's last. The time is credited to the earlier
//! heartbeat's language, project, editor, OS and machine. Copies of a
//! heartbeat add a gap of 0, so they change nothing.
//!
//! Days are the coder's local days (each heartbeat's own UTC offset), as
//! pulses' `local_date`; a session across midnight ends at midnight.

use crate::{db::Db, error::Result, rollups::Users};
use clickhouse::Row;
use serde::Deserialize;
use std::time::Duration;

/// The default keystroke timeout (`CODESTATS_KEYSTROKE_TIMEOUT`), as
/// WakaTime's: gaps between heartbeats up to it are coding time.
pub const DEFAULT_KEYSTROKE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Coding time of a user on a local day for one language, project, editor,
/// OS and machine.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct CodingRow {
    pub user_id: u64,
    /// Days since 1970-01-01, the coder's local date.
    pub local_date: u16,
    pub language: String,
    pub project: String,
    pub editor: String,
    pub os: String,
    pub machine: String,
    pub category: String,
    pub millis: u64,
}

/// The heartbeats of `{users}` on local days `[from, to]`, turned into
/// durations per day and attributes. Each gap is computed from the sorted
/// times and the same array shifted by one (no lambda captures an array,
/// which 18.16 would copy per element: quadratic in a day's heartbeats). `{users}` is replaced by the users'
/// condition; the binds are the timeout, the days, then the users.
const DURATIONS: &str = "\
SELECT user_id, local_date, beat.2 AS language, beat.3 AS project, beat.4 AS editor, \
       beat.5 AS os, beat.6 AS machine, beat.7 AS category, sum(gap) AS millis \
FROM ( \
    SELECT user_id, local_date, \
        arraySort(groupArray((toUInt64(time) * 1000 + time_ms, language, project, editor, \
                              os, machine, category))) AS beats, \
        arrayMap(b -> b.1, beats) AS ts, \
        arrayMap((t, next) -> if(next > t AND next - t <= ?, toUInt64(next - t), toUInt64(0)), \
                 ts, arrayPushBack(arrayPopFront(ts), toUInt64(0))) AS gaps \
    FROM heartbeats \
    WHERE (toUInt16(intDiv(toInt64(toUInt32(time)) + utc_offset * 60, 86400)) AS local_date) \
          BETWEEN ? AND ? AND {users} \
    GROUP BY user_id, local_date \
) \
ARRAY JOIN beats AS beat, gaps AS gap \
GROUP BY user_id, local_date, language, project, editor, os, machine, category \
HAVING millis > 0 \
ORDER BY user_id, local_date, language, project, editor, os, machine, category";

/// Coding time of `users` on local days `from..=to` (days since
/// 1970-01-01), with gaps up to `timeout`.
pub async fn durations(
    db: &Db,
    users: &Users<'_>,
    from: u16,
    to: u16,
    timeout: Duration,
) -> Result<Vec<CodingRow>> {
    let (condition, ids) = users.condition();
    let mut query = db
        .client()
        .query(&DURATIONS.replace("{users}", &condition))
        .bind(timeout.as_millis() as u64)
        .bind(from)
        .bind(to);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query.fetch_all().await?)
}

/// A user's local day from a Unix time and an offset in minutes.
pub fn local_day(unix_secs: i64, utc_offset_minutes: i32) -> u16 {
    (unix_secs + i64::from(utc_offset_minutes) * 60)
        .div_euclid(86_400)
        .clamp(0, i64::from(u16::MAX)) as u16
}

/// The UTC offset of `user_id`'s latest heartbeat, minutes.
pub async fn latest_offset(db: &Db, user_id: u64) -> Result<Option<i16>> {
    let rows: Vec<i16> = db
        .client()
        .query(
            "SELECT utc_offset FROM heartbeats WHERE user_id = ? \
             ORDER BY time DESC, time_ms DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_all()
        .await?;
    Ok(rows.first().copied())
}
