//! What ingest reports through the `metrics` facade. `serve` installs a
//! Prometheus recorder and answers `GET /metrics` on its own listener; with
//! no recorder installed (tests, one-shot commands) every call here is a
//! no-op.
//!
//! Every name is a constant below, documented in README ("Metrics").
//! Labels take a small, fixed set of values: routes are axum's route
//! templates (`/api/users/{name}`, never a name), everything the static
//! site answers is `site`, and reasons are [`AppError::reason`]s.

use crate::{error::AppError, log::Position};
use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use metrics::{counter, gauge, histogram};
use std::{
    collections::VecDeque,
    path::Path,
    time::{Duration, Instant},
};

/// Requests answered, by `route` and `status`.
pub const HTTP_REQUESTS: &str = "codestats_http_requests_total";
/// Time to the response's head, by `route`.
pub const HTTP_DURATION: &str = "codestats_http_request_duration_seconds";
/// Connections of the public listener open now.
pub const OPEN_CONNECTIONS: &str = "codestats_http_open_connections";
/// Connections refused at the connection cap.
pub const REFUSED_CONNECTIONS: &str = "codestats_http_refused_connections_total";
/// Connections closed for stalling (`server::HEADER_READ_TIMEOUT`, …).
pub const TIMED_OUT_CONNECTIONS: &str = "codestats_http_timed_out_connections_total";
/// Pulses acknowledged (201).
pub const PULSES_ACCEPTED: &str = "codestats_pulses_accepted_total";
/// Pulse requests refused, by `reason`.
pub const PULSES_REJECTED: &str = "codestats_pulses_rejected_total";
/// Heartbeats acknowledged and logged (copies of logged ones included).
pub const HEARTBEATS_ACCEPTED: &str = "codestats_heartbeats_accepted_total";
/// Heartbeats refused, by `reason`: one per refused item of a request, or
/// one for a request refused whole.
pub const HEARTBEATS_REJECTED: &str = "codestats_heartbeats_rejected_total";
/// Time of one group commit's `write` + `fdatasync`.
pub const LOG_FSYNC: &str = "codestats_log_fsync_seconds";
/// Records made durable by one group commit.
pub const LOG_COMMIT_RECORDS: &str = "codestats_log_commit_records";
/// Bytes of the log not in ClickHouse yet.
pub const LOG_UNSHIPPED_BYTES: &str = "codestats_log_unshipped_bytes";
/// How long the oldest record not in ClickHouse has waited.
pub const LOG_OLDEST_UNSHIPPED: &str = "codestats_log_oldest_unshipped_seconds";
/// Bytes the log takes on disk (its cap is `CODESTATS_LOG_MAX_BYTES`).
pub const LOG_DISK_BYTES: &str = "codestats_log_disk_bytes";
/// Rows (pulse rows and heartbeats) of one block written to ClickHouse.
pub const SHIP_BLOCK_ROWS: &str = "codestats_ship_block_rows";
/// Time from a block's first INSERT to its last one landing.
pub const SHIP_BLOCK_SECONDS: &str = "codestats_ship_block_seconds";
/// Rows written to ClickHouse by the shipper.
pub const SHIP_ROWS: &str = "codestats_ship_rows_total";
/// Failed or unanswered ClickHouse requests, by `op`.
pub const CLICKHOUSE_ERRORS: &str = "codestats_clickhouse_errors_total";
/// Live-feed streams open now, by `stream` (`front`, `profile`).
pub const LIVE_SUBSCRIBERS: &str = "codestats_live_subscribers";

/// How often the log's gauges are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Most log positions remembered for the oldest record's age: a day of
/// samples. Past it the age is that of the oldest remembered position.
const MAX_SAMPLES: usize = 86_400;

/// The route label of everything the static site answers.
pub const SITE_ROUTE: &str = "site";

/// Middleware for the routes (`Router::route_layer`): counts every request
/// by its route template and status.
pub async fn track_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(SITE_ROUTE, |p| intern(p.as_str()));
    timed(route, request, next).await
}

/// Middleware for the static site (the fallback): counts its requests
/// under [`SITE_ROUTE`].
pub async fn track_site(request: Request, next: Next) -> Response {
    timed(SITE_ROUTE, request, next).await
}

async fn timed(route: &'static str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    histogram!(HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "status" => status_label(status)).increment(1);
    response
}

/// A route template as a `'static` label, so counting a request allocates
/// nothing. Templates are the router's: a few dozen, each kept once.
fn intern(route: &str) -> &'static str {
    static ROUTES: std::sync::RwLock<Vec<&'static str>> = std::sync::RwLock::new(Vec::new());
    let known = |routes: &[&'static str]| routes.iter().find(|r| **r == route).copied();
    if let Some(found) = known(&ROUTES.read().unwrap_or_else(|e| e.into_inner())) {
        return found;
    }
    let mut routes = ROUTES.write().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = known(&routes) {
        return found;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    routes.push(leaked);
    leaked
}

/// The status as a `'static` label.
fn status_label(status: axum::http::StatusCode) -> metrics::SharedString {
    match status.as_u16() {
        200 => "200".into(),
        201 => "201".into(),
        202 => "202".into(),
        204 => "204".into(),
        302 => "302".into(),
        303 => "303".into(),
        304 => "304".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        429 => "429".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

/// Reports the public server's connections from its own counters (called
/// before each scrape): the metrics listener's connections are not among
/// them, and accepting a connection pays for nothing more.
pub fn report_connections(stats: &crate::server::ServerStats) {
    use std::sync::atomic::Ordering::Relaxed;
    gauge!(OPEN_CONNECTIONS).set(stats.open.load(Relaxed) as f64);
    counter!(REFUSED_CONNECTIONS).absolute(stats.refused.load(Relaxed));
    counter!(TIMED_OUT_CONNECTIONS).absolute(stats.timed_out.load(Relaxed));
}

/// Counts a pulse request's outcome.
pub fn pulse_outcome<T>(outcome: &Result<T, AppError>) {
    match outcome {
        Ok(_) => counter!(PULSES_ACCEPTED).increment(1),
        Err(e) => counter!(PULSES_REJECTED, "reason" => e.reason()).increment(1),
    }
}

/// Counts heartbeats accepted, and refused by `reason`.
pub fn heartbeats(accepted: u64, rejected: &[(&'static str, u64)]) {
    if accepted > 0 {
        counter!(HEARTBEATS_ACCEPTED).increment(accepted);
    }
    for &(reason, n) in rejected {
        if n > 0 {
            counter!(HEARTBEATS_REJECTED, "reason" => reason).increment(n);
        }
    }
}

/// Counts a failed or unanswered ClickHouse request.
pub fn clickhouse_error(op: &'static str) {
    counter!(CLICKHOUSE_ERRORS, "op" => op).increment(1);
}

/// Samples the log's gauges every [`SAMPLE_EVERY`] until `stop`.
pub(crate) async fn sample_log(
    app: std::sync::Weak<crate::App>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ages = Ages::default();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some(app) = app.upgrade() else { return };
        let durable = *app.log.durable().borrow();
        let shipped = app.shipper.shipped();
        let dir = app.log.dir().to_owned();
        let unshipped =
            tokio::task::spawn_blocking(move || unshipped_bytes(&dir, shipped, durable))
                .await
                .unwrap_or(0);
        gauge!(LOG_UNSHIPPED_BYTES).set(unshipped as f64);
        gauge!(LOG_DISK_BYTES).set(app.log.disk_bytes() as f64);
        let age = ages.observe(durable, shipped, Instant::now());
        gauge!(LOG_OLDEST_UNSHIPPED).set(age.as_secs_f64());
    }
}

/// When each durable end was first seen, so the age of the oldest record
/// past the shipped position is known to within a sample.
#[derive(Default)]
struct Ages {
    seen: VecDeque<(Position, Instant)>,
}

impl Ages {
    /// Notes the log's ends now; the age of the oldest unshipped record.
    fn observe(&mut self, durable: Position, shipped: Position, now: Instant) -> Duration {
        while self.seen.front().is_some_and(|(end, _)| *end <= shipped) {
            self.seen.pop_front();
        }
        if durable > shipped
            && self.seen.back().is_none_or(|(end, _)| *end < durable)
            && self.seen.len() < MAX_SAMPLES
        {
            self.seen.push_back((durable, now));
        }
        match self.seen.front() {
            Some((_, since)) if durable > shipped => now.saturating_duration_since(*since),
            _ => Duration::ZERO,
        }
    }
}

/// Bytes of the log's records from `shipped` to `durable`, counting whole
/// segment files in between (their headers included).
pub fn unshipped_bytes(dir: &Path, shipped: Position, durable: Position) -> u64 {
    if durable <= shipped {
        return 0;
    }
    if durable.segment == shipped.segment {
        return durable.offset - shipped.offset;
    }
    let size = |id| {
        std::fs::metadata(crate::log::segment::path(dir, id))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let mut total = size(shipped.segment).saturating_sub(shipped.offset) + durable.offset;
    for id in shipped.segment + 1..durable.segment {
        total += size(id);
    }
    total
}

/// Counts a live stream while it is open.
pub(crate) struct LiveSubscriber(&'static str);

impl LiveSubscriber {
    pub(crate) fn open(stream: &'static str) -> Self {
        gauge!(LIVE_SUBSCRIBERS, "stream" => stream).increment(1.0);
        Self(stream)
    }
}

impl Drop for LiveSubscriber {
    fn drop(&mut self) {
        gauge!(LIVE_SUBSCRIBERS, "stream" => self.0).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn the_oldest_age_is_that_of_the_first_end_past_the_shipped_position() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut ages = Ages::default();
        assert_eq!(ages.observe(at(1, 10), at(1, 10), t0), Duration::ZERO);
        assert_eq!(ages.observe(at(1, 20), at(1, 10), t0 + s), Duration::ZERO);
        assert_eq!(ages.observe(at(1, 30), at(1, 10), t0 + 3 * s), 2 * s);
        // The first block shipped: the second end is now the oldest.
        assert_eq!(ages.observe(at(1, 30), at(1, 20), t0 + 4 * s), s);
        assert_eq!(
            ages.observe(at(1, 30), at(1, 30), t0 + 5 * s),
            Duration::ZERO
        );
        assert!(ages.seen.is_empty());
    }

    #[test]
    fn unshipped_bytes_within_one_segment_and_across_them() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unshipped_bytes(dir.path(), at(1, 50), at(1, 50)), 0);
        assert_eq!(unshipped_bytes(dir.path(), at(1, 50), at(1, 80)), 30);
        std::fs::write(crate::log::segment::path(dir.path(), 1), vec![0; 100]).unwrap();
        std::fs::write(crate::log::segment::path(dir.path(), 2), vec![0; 70]).unwrap();
        assert_eq!(
            unshipped_bytes(dir.path(), at(1, 60), at(3, 5)),
            40 + 70 + 5
        );
    }
}
