//! `GET /live` and `GET /live/users/{name}`: accepted pulses as server-sent
//! events, for open pages.
//!
//! One hub task ([`Live::run`]) subscribes to `App.events` (and the live
//! relay's poller hands it other nodes' pulses, `crate::relay`). It encodes
//! each pulse once, as two complete SSE frames (the front page's JSON and
//! the profile's), keeps the last [`RING_EVENTS`] in a ring for
//! `Last-Event-ID` resumes, and forwards it to the front channel (public
//! pulses only) and to the channel of its user (only while somebody watches
//! that profile). Every channel is a bounded `tokio::sync::broadcast`, so:
//!
//! - publishing never waits: a full channel overwrites its oldest frame;
//! - a connection holds a receiver and a few small buffers, nothing that
//!   grows with the rate of pulses: a client that does not read stops being
//!   polled and costs only its kernel socket buffers;
//! - a subscriber that falls more than a channel's length behind is dropped
//!   (its stream ends). Browsers reconnect with `Last-Event-ID` and get
//!   what they missed from the ring.
//!
//! Event ids are `PulseEvent.seq`, numbered by this process for its own
//! pulses and relayed ones alike, from the process's start time in
//! milliseconds × 1,000 (`Stats::seq_base`): an earlier run's ids are
//! below the ring and get the whole ring replayed; an id greater than any
//! seen is treated the same way.
//!
//! Private users: nothing of a user who is not public *now* (per
//! [`Visibility`], at most `TOKEN_REFRESH` old, at once for changes made
//! through this process) is handed out — not when a pulse is published, not
//! when the ring is replayed, not when a stream takes a frame from its
//! channel. A user who stops being public has their frames dropped from the
//! ring and their profile streams ended ([`Live::forget_user`]); their
//! profile stream answers 404.
//!
//! Streams are capped at [`MAX_STREAMS`] (503 past it); they are exempt from
//! the server's idle timeout.

use crate::{
    AppState,
    api::users::USER_NOT_FOUND,
    error::AppError,
    events::{PulseEvent, XpItem},
    languages::ShownNames,
    visibility::Visibility,
};
use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, FixedOffset, SecondsFormat};
use futures::StreamExt;
use serde::Serialize;
use sql::languages::Aliases;
use sse_stream::Sse;
use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

/// Recent pulses kept for `Last-Event-ID` resumes.
pub const RING_EVENTS: usize = 1000;
/// Frames the front channel holds for a subscriber that is behind; one
/// further behind is dropped.
pub const FRONT_BUFFER: usize = 1024;
/// The same for one profile's channel.
pub const PROFILE_BUFFER: usize = 64;
/// A comment goes to every stream this often, so proxies keep it open and
/// dead connections are noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The reconnection delay browsers are told to use, milliseconds.
pub const RETRY_MS: u64 = 2000;
/// Most live streams open at once; one more is answered 503.
pub const MAX_STREAMS: u64 = 20_000;
/// The SSE event name of a pulse.
pub const EVENT_NAME: &str = "pulse";

/// One pulse, encoded once for every stream.
#[derive(Debug)]
struct Frame {
    seq: u64,
    user_id: u64,
    private: bool,
    /// The visibility generation at which the user was found public.
    generation: u64,
    front: Bytes,
    profile: Bytes,
}

#[derive(Debug, Clone)]
enum Msg {
    Pulse(Arc<Frame>),
    KeepAlive,
    /// The server is shutting down: end the stream.
    Close,
}

/// What a stream shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Front,
    Profile(u64),
}

impl Target {
    fn wants(self, frame: &Frame) -> bool {
        match self {
            Target::Front => !frame.private,
            Target::Profile(user_id) => frame.user_id == user_id && !frame.private,
        }
    }

    fn bytes(self, frame: &Frame) -> Bytes {
        match self {
            Target::Front => frame.front.clone(),
            Target::Profile(_) => frame.profile.clone(),
        }
    }
}

/// The `data` of a pulse on a profile stream.
#[derive(Debug, Serialize)]
struct ProfileData<'a> {
    xps: &'a [XpItem],
    coded_at: String,
    coded_at_local: String,
    machine: &'a str,
}

/// The `data` of a pulse on the front stream.
#[derive(Debug, Serialize)]
struct FrontData<'a> {
    user: &'a str,
    xps: &'a [XpItem],
    coded_at: &'a str,
}

impl Frame {
    /// The frames of `e`, language names as `aliases` show them (items of
    /// one shown name summed).
    fn encode(e: &PulseEvent, aliases: &Aliases) -> Self {
        let mut xps: Vec<XpItem> = Vec::with_capacity(e.xps.len());
        for item in &e.xps {
            let shown = aliases.canonical(&item.language);
            match xps.iter_mut().find(|x| x.language == shown) {
                Some(x) => x.xp = x.xp.saturating_add(item.xp),
                None => xps.push(XpItem {
                    language: shown.to_owned(),
                    xp: item.xp,
                }),
            }
        }
        let utc = DateTime::from_timestamp(e.coded_at, 0).unwrap_or_default();
        let coded_at = utc.to_rfc3339_opts(SecondsFormat::Secs, true);
        let coded_at_local = FixedOffset::east_opt(i32::from(e.utc_offset) * 60)
            .map(|offset| {
                utc.with_timezone(&offset)
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
            })
            .unwrap_or_else(|| coded_at.clone());
        let front = FrontData {
            user: &e.username,
            xps: &xps,
            coded_at: &coded_at,
        };
        let profile = ProfileData {
            xps: &xps,
            coded_at: coded_at.clone(),
            coded_at_local,
            machine: &e.machine,
        };
        Self {
            seq: e.seq,
            user_id: e.user_id,
            private: e.private,
            generation: 0,
            front: sse_frame(e.seq, &front),
            profile: sse_frame(e.seq, &profile),
        }
    }
}

fn sse_frame(seq: u64, data: &impl Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Sse::default()
        .event(EVENT_NAME)
        .id(seq.to_string())
        .data(json)
        .encode()
        // The event name and a number hold no line breaks.
        .unwrap_or_default()
}

/// The first bytes of every stream: the reconnection delay. Sent at once, it
/// also gets the headers through buffering proxies.
fn preamble() -> Bytes {
    Sse::default().retry(RETRY_MS).encode().unwrap_or_default()
}

const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

struct Shared {
    ring: VecDeque<Arc<Frame>>,
    /// Per-user channels, present while someone may be watching.
    profiles: HashMap<u64, broadcast::Sender<Msg>>,
    /// Highest seq the hub has seen.
    max_seq: u64,
}

/// Counters, for tests, the benchmark and logs.
#[derive(Debug, Default)]
pub struct LiveStats {
    /// Streams open now.
    pub open: AtomicU64,
    /// Streams ended because their client fell too far behind.
    pub dropped: AtomicU64,
    /// Pulses the hub itself missed (it fell `EVENT_BUFFER` behind ingest).
    pub hub_missed: AtomicU64,
}

/// The live feed's state: channels, the ring, and who may be shown.
pub struct Live {
    front: broadcast::Sender<Msg>,
    shared: Mutex<Shared>,
    visibility: Arc<Visibility>,
    /// How language names are shown.
    names: Arc<ShownNames>,
    closed: AtomicBool,
    max_streams: u64,
    pub stats: LiveStats,
}

impl Live {
    pub fn new(visibility: Arc<Visibility>) -> Self {
        Self {
            front: broadcast::channel(FRONT_BUFFER).0,
            shared: Mutex::new(Shared {
                ring: VecDeque::with_capacity(RING_EVENTS),
                profiles: HashMap::new(),
                max_seq: 0,
            }),
            visibility,
            names: Arc::default(),
            closed: AtomicBool::new(false),
            max_streams: MAX_STREAMS,
            stats: LiveStats::default(),
        }
    }

    /// Shows language names as `names` has them (the default: the default
    /// aliases).
    pub fn with_names(mut self, names: Arc<ShownNames>) -> Self {
        self.names = names;
        self
    }

    /// The same with another stream cap (tests).
    pub fn with_max_streams(mut self, max_streams: u64) -> Self {
        self.max_streams = max_streams;
        self
    }

    /// Whether a frame may be shown now.
    fn shown(&self, frame: &Frame) -> bool {
        !frame.private
            && self
                .visibility
                .is_public_since(frame.user_id, frame.generation)
    }

    /// A user is no longer public: their frames leave the ring and their
    /// profile streams end. Frames already in a channel are dropped by the
    /// streams themselves ([`Live::shown`]).
    pub fn forget_user(&self, user_id: u64) {
        let mut shared = lock(&self.shared);
        shared.ring.retain(|f| f.user_id != user_id);
        if let Some(channel) = shared.profiles.remove(&user_id) {
            let _ = channel.send(Msg::Close);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    /// The hub: forwards `events` until `stop`, then ends every stream.
    pub async fn run(
        self: Arc<Self>,
        mut events: broadcast::Receiver<Arc<PulseEvent>>,
        stop: CancellationToken,
    ) {
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => self.keep_alive(),
                event = events.recv() => match event {
                    Ok(event) => self.publish(&event),
                    Err(RecvError::Lagged(n)) => {
                        self.stats.hub_missed.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(missed = n, "live feed fell behind ingest; pulses skipped");
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
        self.close();
    }

    /// Sends one pulse to the ring and the channels that show it. Never waits
    /// for a subscriber. The hub calls it for this node's pulses, the live
    /// relay's poller for other nodes' (`crate::relay`).
    pub(crate) fn publish(&self, event: &PulseEvent) {
        let mut frame = Frame::encode(event, &self.names.get());
        // The generation first: a user hidden after it makes it stale.
        frame.generation = self.visibility.generation();
        frame.private |= !self.visibility.is_public(frame.user_id);
        let frame = Arc::new(frame);
        let mut shared = lock(&self.shared);
        // Ring and channels change under one lock, so a subscriber that
        // subscribes and copies the ring under it sees each frame once.
        if shared.ring.len() == RING_EVENTS {
            shared.ring.pop_front();
        }
        shared.ring.push_back(frame.clone());
        shared.max_seq = shared.max_seq.max(frame.seq);
        if !frame.private {
            let _ = self.front.send(Msg::Pulse(frame.clone()));
        }
        // A private pulse goes to its profile channel too: it ends the
        // streams of a user who has just turned private.
        if let Some(channel) = shared.profiles.get(&frame.user_id)
            && channel.send(Msg::Pulse(frame.clone())).is_err()
        {
            shared.profiles.remove(&frame.user_id);
        }
    }

    fn keep_alive(&self) {
        let _ = self.front.send(Msg::KeepAlive);
        let mut shared = lock(&self.shared);
        shared
            .profiles
            .retain(|_, channel| channel.send(Msg::KeepAlive).is_ok());
        tracing::debug!(
            open = self.stats.open.load(Ordering::Relaxed),
            profiles = shared.profiles.len(),
            "live streams"
        );
    }

    /// Ends every open stream and refuses new ones. Call when the server
    /// starts shutting down: a graceful HTTP shutdown waits for open
    /// streams. `App::shutdown` calls it too.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.front.send(Msg::Close);
        let mut shared = lock(&self.shared);
        for channel in shared.profiles.values() {
            let _ = channel.send(Msg::Close);
        }
        shared.profiles.clear();
    }

    /// Frames waiting in the front channel (at most [`FRONT_BUFFER`]).
    pub fn front_queued(&self) -> usize {
        self.front.len()
    }

    /// Frames in the resume ring (at most [`RING_EVENTS`]).
    pub fn ring_len(&self) -> usize {
        lock(&self.shared).ring.len()
    }

    /// Profiles with a channel (someone watched them since the last pulse or
    /// keep-alive).
    pub fn profile_channels(&self) -> usize {
        lock(&self.shared).profiles.len()
    }

    /// A receiver for `target` and the frames to replay first, taken
    /// atomically with respect to [`Live::publish`].
    fn subscribe(
        &self,
        target: Target,
        last_event_id: Option<u64>,
    ) -> (broadcast::Receiver<Msg>, Vec<Arc<Frame>>) {
        let mut shared = lock(&self.shared);
        let receiver = match target {
            Target::Front => self.front.subscribe(),
            Target::Profile(user_id) => shared
                .profiles
                .entry(user_id)
                .or_insert_with(|| broadcast::channel(PROFILE_BUFFER).0)
                .subscribe(),
        };
        let replay = match last_event_id {
            None => Vec::new(),
            Some(id) => {
                let ring = &shared.ring;
                let start = match ring.iter().position(|f| f.seq == id) {
                    Some(i) => i + 1,
                    // Older than the ring, or from an earlier run: all of it.
                    None if id > shared.max_seq || ring.front().is_some_and(|f| id < f.seq) => 0,
                    // Within the ring's range but missed by the hub.
                    None => ring.iter().position(|f| f.seq > id).unwrap_or(ring.len()),
                };
                ring.iter()
                    .skip(start)
                    .filter(|f| target.wants(f) && self.shown(f))
                    .cloned()
                    .collect()
            }
        };
        (receiver, replay)
    }

    fn stream(self: &Arc<Self>, target: Target, headers: &HeaderMap) -> Response {
        if self.closed.load(Ordering::SeqCst) {
            return AppError::Unavailable {
                message: "shutting down",
                retry_after_secs: 5,
            }
            .into_response();
        }
        let Some(open) = OpenStream::reserve(self.clone(), target) else {
            return AppError::Unavailable {
                message: "too many live streams, try again later",
                retry_after_secs: 30,
            }
            .into_response();
        };
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (receiver, replay) = self.subscribe(target, last_event_id);
        let events =
            futures::stream::unfold((receiver, open), move |(mut receiver, open)| async move {
                loop {
                    let bytes = match receiver.recv().await {
                        Ok(Msg::Pulse(frame)) => {
                            if target.wants(&frame) && open.live.shown(&frame) {
                                target.bytes(&frame)
                            } else if target == Target::Profile(frame.user_id) {
                                // The user is no longer public: end their stream.
                                return None;
                            } else {
                                continue;
                            }
                        }
                        Ok(Msg::KeepAlive) => Bytes::from_static(KEEP_ALIVE_COMMENT),
                        Ok(Msg::Close) | Err(RecvError::Closed) => return None,
                        Err(RecvError::Lagged(_)) => {
                            open.live.stats.dropped.fetch_add(1, Ordering::Relaxed);
                            return None;
                        }
                    };
                    return Some((Ok::<_, Infallible>(bytes), (receiver, open)));
                }
            });
        let first: Vec<Bytes> = std::iter::once(preamble())
            .chain(replay.iter().map(|f| target.bytes(f)))
            .collect();
        let body = futures::stream::iter(first.into_iter().map(Ok::<_, Infallible>)).chain(events);
        let mut response = Body::from_stream(body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // nginx: pass every frame on at once.
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

/// Counts an open stream while it lives.
struct OpenStream {
    live: Arc<Live>,
    _counted: crate::metrics::LiveSubscriber,
}

impl OpenStream {
    /// Counts a stream, unless [`Live`]'s cap is reached.
    fn reserve(live: Arc<Live>, target: Target) -> Option<Self> {
        let before = live.stats.open.fetch_add(1, Ordering::AcqRel);
        if before >= live.max_streams {
            live.stats.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let stream = match target {
            Target::Front => "front",
            Target::Profile(_) => "profile",
        };
        Some(Self {
            live,
            _counted: crate::metrics::LiveSubscriber::open(stream),
        })
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.live.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET /live`: every public pulse, `{"user", "xps", "coded_at"}`.
pub async fn front(State(app): State<AppState>, headers: HeaderMap) -> Response {
    app.live.stream(Target::Front, &headers)
}

/// `GET /live/users/{name}`: one public user's pulses,
/// `{"xps", "coded_at", "coded_at_local", "machine"}`.
pub async fn profile(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let (user_id, _) = app
        .visibility
        .public_user(&name)
        .ok_or(AppError::NotFound(USER_NOT_FOUND))?;
    Ok(app.live.stream(Target::Profile(user_id), &headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, user_id: u64, private: bool) -> PulseEvent {
        PulseEvent {
            seq,
            user_id,
            username: format!("u{user_id}"),
            private,
            machine: "m".into(),
            xps: vec![XpItem {
                language: "Rust".into(),
                xp: 3,
            }],
            coded_at: 1_700_000_000,
            utc_offset: -330,
        }
    }

    /// A live feed where users 1 to 9 are public.
    fn live() -> Live {
        let visibility = Arc::new(Visibility::default());
        for user_id in 1..10 {
            visibility.show(user_id, &format!("u{user_id}"));
        }
        Live::new(visibility)
    }

    fn seqs(frames: &[Arc<Frame>]) -> Vec<u64> {
        frames.iter().map(|f| f.seq).collect()
    }

    #[test]
    fn frames_carry_both_times_and_the_seq() {
        let f = Frame::encode(&event(7, 1, false), &Aliases::defaults());
        assert_eq!(
            std::str::from_utf8(&f.profile).unwrap(),
            "event: pulse\ndata: {\"xps\":[{\"language\":\"Rust\",\"xp\":3}],\
             \"coded_at\":\"2023-11-14T22:13:20Z\",\"coded_at_local\":\"2023-11-14T16:43:20-05:30\",\
             \"machine\":\"m\"}\nid: 7\n\n"
        );
        assert_eq!(
            std::str::from_utf8(&f.front).unwrap(),
            "event: pulse\ndata: {\"user\":\"u1\",\"xps\":[{\"language\":\"Rust\",\"xp\":3}],\
             \"coded_at\":\"2023-11-14T22:13:20Z\"}\nid: 7\n\n"
        );
    }

    #[test]
    fn resume_replays_what_follows_the_last_id() {
        let live = live();
        for (seq, user, private) in [(1, 1, false), (2, 2, true), (4, 1, false), (3, 1, false)] {
            live.publish(&event(seq, user, private));
        }
        let check = |target, last, expected: &[u64]| {
            assert_eq!(
                seqs(&live.subscribe(target, last).1),
                expected,
                "{target:?} {last:?}"
            );
        };
        check(Target::Front, None, &[]);
        // by position in the ring, so out-of-order seqs resume exactly
        check(Target::Front, Some(1), &[4, 3]);
        check(Target::Front, Some(4), &[3]);
        check(Target::Front, Some(3), &[]);
        check(Target::Profile(1), Some(1), &[4, 3]);
        check(Target::Profile(2), Some(1), &[]);
        // from an earlier run of the process: everything
        check(Target::Front, Some(99), &[1, 4, 3]);
    }

    #[test]
    fn replay_never_hands_out_a_user_who_is_not_public_now() {
        let live = live();
        live.publish(&event(1, 1, false));
        live.publish(&event(2, 2, false));
        // Made private by another process: seen through the visibility set
        // before the ring is purged.
        live.visibility.hide(1);
        assert_eq!(seqs(&live.subscribe(Target::Front, Some(0)).1), [2]);
        live.forget_user(1);
        assert_eq!(live.ring_len(), 1);
        // A pulse whose event still says public (token cache not yet
        // refreshed) is not shown either.
        live.publish(&event(3, 1, false));
        assert_eq!(seqs(&live.subscribe(Target::Front, Some(0)).1), [2]);
        assert_eq!(
            seqs(&live.subscribe(Target::Profile(1), Some(0)).1),
            [0u64; 0]
        );
        // Unknown users (created since the last refresh) wait for it.
        live.publish(&event(4, 42, false));
        assert_eq!(seqs(&live.subscribe(Target::Front, Some(0)).1), [2]);
    }

    #[test]
    fn the_ring_and_channels_are_bounded() {
        let live = live();
        let (_stuck, _) = live.subscribe(Target::Front, None);
        for seq in 1..=(RING_EVENTS + FRONT_BUFFER) as u64 * 2 {
            live.publish(&event(seq, 1, false));
        }
        assert_eq!(live.ring_len(), RING_EVENTS);
        assert!(live.front_queued() <= FRONT_BUFFER);
        let (_, replay) = live.subscribe(Target::Front, Some(1));
        assert_eq!(replay.len(), RING_EVENTS);
    }

    #[test]
    fn a_profile_channel_goes_when_nobody_watches() {
        let live = live();
        let (receiver, _) = live.subscribe(Target::Profile(5), None);
        assert_eq!(live.profile_channels(), 1);
        drop(receiver);
        live.publish(&event(1, 5, false));
        assert_eq!(live.profile_channels(), 0);
    }
}
