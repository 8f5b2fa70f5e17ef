//! The HTTP/1.1 server under the API and the site: an accept loop over
//! hyper with the limits a service on the open internet needs.
//!
//! - **Connection cap.** At most [`ServerLimits::max_connections`] are open
//!   at once; [`connection_cap`] derives it from the process's file limit
//!   minus [`FD_RESERVE`] descriptors kept for ClickHouse, the spool and the
//!   site. A connection over the cap gets a `503` JSON answer written
//!   without waiting and is closed at once; open connections are untouched.
//! - **Header-read timeout.** A request whose head (request line and
//!   headers) has started but is not complete within
//!   [`HEADER_READ_TIMEOUT`] has its connection closed.
//! - **Idle timeout.** A keep-alive connection with no request under way
//!   for [`IDLE_TIMEOUT`] is closed. A request under way — a live stream
//!   above all — is never idle, so SSE streams are exempt; they have a cap
//!   of their own (`live::MAX_STREAMS`).
//! - **Write-stall timeout.** A response the client does not read — the
//!   socket refuses more bytes — for [`WRITE_STALL_TIMEOUT`] has its
//!   connection closed, live streams included (they write a comment every
//!   15 s, so a reading client never stalls that long).
//! - **Body-read timeout.** Handlers that read a body bound it themselves
//!   ([`BODY_READ_TIMEOUT`], `api::pulses`); a handler that ignores a body
//!   leaves the connection to be closed after its answer.
//!
//! Each connection has a watchdog that looks at its phase every
//! [`WATCHDOG_TICK`]: the phase moves to *head* when the first byte of a
//! request arrives, to *busy* when hyper hands the request to the router,
//! and back to *idle* when the response body has been sent (or dropped).

use axum::{Router, body::Body, extract::Request, response::Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Longest a client may take to send a request's line and headers once it
/// has started.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a client may take to send a request body (the pulse API's at
/// most 64 KiB) once the headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A keep-alive connection with no request under way is closed after this
/// (plugins send a pulse every ~10 s and keep their connection).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A response whose bytes the client has not taken for this long (the
/// socket stays full) has its connection closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connections may take to finish their requests once the server
/// stops (the default of `serve`'s grace period); then they are closed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Once the server stops, how long a keep-alive connection with no request
/// under way is kept for the request its client may be sending already
/// (answered with `Connection: close`). Closing it at once would fail a
/// request that crosses the close on the wire; past this, one that does
/// still can.
pub const DRAIN_IDLE: Duration = Duration::from_secs(1);
/// How often a connection's watchdog looks at it.
pub const WATCHDOG_TICK: Duration = Duration::from_millis(500);
/// File descriptors kept free for everything but client connections:
/// ClickHouse connections, spool files, site files, logs.
pub const FD_RESERVE: u64 = 1024;
/// Upper bound of the connection cap whatever the file limit.
pub const MAX_CONNECTIONS: usize = 60_000;
/// Pause after an `accept` error (e.g. out of descriptors) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// What a connection over the cap is told before it is closed.
const OVER_CAP_BODY: &str = "{\"error\":\"too many connections, try again later\"}";

/// The server's limits; [`ServerLimits::default`] holds the constants above
/// and the cap from the file limit.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_stall_timeout: Duration,
    pub shutdown_grace: Duration,
    pub drain_idle: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: connection_cap(),
            header_read_timeout: HEADER_READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
            drain_idle: DRAIN_IDLE,
        }
    }
}

/// Raises the soft file limit to the hard one and returns how many client
/// connections fit below it with [`FD_RESERVE`] to spare (at most
/// [`MAX_CONNECTIONS`], at least 16).
pub fn connection_cap() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let soft = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    };
    let cap = soft.saturating_sub(FD_RESERVE).max(16);
    usize::try_from(cap)
        .unwrap_or(MAX_CONNECTIONS)
        .min(MAX_CONNECTIONS)
}

/// Counters of the server, for tests, benchmarks and logs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections refused at the cap since start.
    pub refused: AtomicU64,
    /// Connections closed by a timeout since start.
    pub timed_out: AtomicU64,
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets every
/// open connection finish its request under way for at most
/// `limits.shutdown_grace`, closes those still open, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    stats: Arc<ServerStats>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    // Cancelled when the grace period is over: every connection closes.
    let kill = CancellationToken::new();
    tracing::debug!(max_connections = limits.max_connections, "accepting");
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            // Never waits: whatever the socket takes now, then close.
            let _ = stream.try_write(over_cap_response().as_bytes());
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let limits = limits.clone();
        let stats = stats.clone();
        let stop = stop.clone();
        let kill = kill.clone();
        connections.spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = connection(stream, peer, router, &limits, &stats, stop) => {}
                () = kill.cancelled() => {}
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = stats.open.load(Ordering::Relaxed),
            grace = ?limits.shutdown_grace,
            "connections still open after the grace period; closing them"
        );
        kill.cancel();
        connections.wait().await;
    }
}

fn over_cap_response() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{OVER_CAP_BODY}",
        OVER_CAP_BODY.len()
    )
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// Where a connection is, and since when (milliseconds since `epoch`).
struct Phase {
    epoch: Instant,
    phase: AtomicU8,
    since_ms: AtomicU64,
    /// Woken when a request starts (the phase leaves idle).
    started: tokio::sync::Notify,
    /// 1 + when a write was first refused by a full socket, or 0 while
    /// writes go through.
    write_blocked_ms: AtomicU64,
}

impl Phase {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            phase: AtomicU8::new(IDLE),
            since_ms: AtomicU64::new(0),
            started: tokio::sync::Notify::new(),
            write_blocked_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn set(&self, phase: u8) {
        self.since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
        if phase == HEAD {
            self.started.notify_one();
        }
    }

    /// Notes a write refused by a full socket, or one that went through
    /// (which also keeps an idle connection's response from counting as
    /// idle time while it is still being sent).
    fn write_blocked(&self, blocked: bool) {
        if !blocked {
            self.write_blocked_ms.store(0, Ordering::Relaxed);
            if self.phase.load(Ordering::Acquire) == IDLE {
                self.since_ms.store(self.now_ms(), Ordering::Relaxed);
            }
        } else if self.write_blocked_ms.load(Ordering::Relaxed) == 0 {
            self.write_blocked_ms
                .store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }

    /// How long writes have been refused, if they are.
    fn write_stalled_for(&self) -> Option<Duration> {
        match self.write_blocked_ms.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Duration::from_millis(self.now_ms().saturating_sub(at - 1))),
        }
    }

    /// The phase and how long it has lasted.
    fn get(&self) -> (u8, Duration) {
        let phase = self.phase.load(Ordering::Acquire);
        let since = self.since_ms.load(Ordering::Relaxed);
        (
            phase,
            Duration::from_millis(self.now_ms().saturating_sub(since)),
        )
    }
}

async fn connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    limits: &ServerLimits,
    stats: &ServerStats,
    stop: CancellationToken,
) {
    let phase = Arc::new(Phase::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        phase: phase.clone(),
    });
    let service = {
        let phase = phase.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let router = router.clone();
            let phase = phase.clone();
            // Handlers that count by client address (login limits) read it.
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            async move {
                phase.set(BUSY);
                let response = router
                    .oneshot(request.map(Body::new))
                    .await
                    .unwrap_or_else(|never| match never {});
                Ok::<Response, std::convert::Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        inner: body,
                        done: Some(IdleOnDrop(phase)),
                    })
                }))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut tick = tokio::time::interval(WATCHDOG_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set once the server stops: until then an idle connection waits for
    // its next request, which then ends it.
    let mut idle_until: Option<tokio::time::Instant> = None;
    let mut shut = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if idle_until.is_none() => {
                idle_until = Some(tokio::time::Instant::now() + limits.drain_idle);
                if phase.get().0 != IDLE {
                    shut = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = phase.started.notified(), if idle_until.is_some() && !shut => {
                if phase.get().0 != IDLE {
                    // The request under way is answered, then the connection closes.
                    shut = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(idle_until.unwrap_or_else(tokio::time::Instant::now)), if idle_until.is_some() && !shut => {
                shut = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                let (now, lasted) = phase.get();
                let stalled = phase.write_stalled_for();
                // A response the client does not take counts whatever the
                // phase: hyper may hold the whole body already.
                let expired = match (now, stalled) {
                    (_, Some(stalled)) => stalled > limits.write_stall_timeout,
                    (IDLE, None) => lasted > limits.idle_timeout,
                    (HEAD, None) => lasted > limits.header_read_timeout,
                    _ => false,
                };
                if expired {
                    // An idle keep-alive ending is normal; the others are not.
                    if now != IDLE || stalled.is_some() {
                        stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(phase = now, "closing a stalled connection");
                    }
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// The socket, noting the first byte of each request.
struct Watched {
    inner: TcpStream,
    phase: Arc<Phase>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.phase.phase.load(Ordering::Acquire) == IDLE {
            self.phase.set(HEAD);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.phase.write_blocked(polled.is_pending());
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.phase.write_blocked(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Sets the connection idle when the response body is gone.
struct IdleOnDrop(Arc<Phase>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.set(IDLE);
    }
}

/// A response body that marks its connection idle once sent or dropped.
struct Tracked {
    inner: Body,
    done: Option<IdleOnDrop>,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.done.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A server running in a task of its own (tests, benchmarks, tools).
pub struct RunningServer {
    pub addr: std::net::SocketAddr,
    pub stats: Arc<ServerStats>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Binds `addr` (port 0: any free port) and serves `router` there.
    pub async fn start(
        addr: std::net::SocketAddr,
        router: Router,
        limits: ServerLimits,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(ServerStats::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router, limits, stats.clone(), stop.clone()));
        Ok(Self {
            addr,
            stats,
            stop,
            task,
        })
    }

    /// Stops accepting and waits for open connections to finish.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
