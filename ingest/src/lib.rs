//! The codestats HTTP API: health, the Code::Stats pulse endpoint with
//! durable group commit, and the read API.

pub mod api;
pub mod commit;
pub mod error;
pub mod events;
pub mod health;
pub mod languages;
pub mod limits;
pub mod live;
pub mod pulse;
pub mod rate;
pub mod spool;
pub mod tokens;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::Method,
    middleware,
    routing::{get, post},
};
use sql::Db;
use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicU64},
};
use tower_http::cors::{Any, CorsLayer};

/// How ingest is set up; `IngestConfig::new` gives the defaults.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Where batches wait while ClickHouse is away (`DATA_DIR/spool`).
    pub spool_dir: PathBuf,
    /// `CODESTATS_RATE_PER_MINUTE`: sustained pulses per minute per token.
    pub rate_per_minute: u32,
    /// `CODESTATS_RATE_BURST`: pulses per token at once on top of that.
    pub rate_burst: u32,
    /// How old a spooled batch must be before it is replayed.
    pub replay_delay: std::time::Duration,
    /// `CODESTATS_INSERTS_IN_FLIGHT`: group-commit INSERTs running at once.
    pub inserts_in_flight: usize,
}

impl IngestConfig {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            spool_dir: data_dir.join("spool"),
            rate_per_minute: limits::DEFAULT_RATE_PER_MINUTE,
            rate_burst: limits::DEFAULT_RATE_BURST,
            replay_delay: commit::REPLAY_DELAY,
            inserts_in_flight: commit::MAX_INSERTS_IN_FLIGHT,
        }
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub spooled: AtomicU64,
    /// The first event sequence number of this process: its start time in
    /// milliseconds × 1,000, so a later process's events always have larger
    /// ids than an earlier one's (live streams resume across restarts).
    pub seq_base: u64,
}

impl Stats {
    fn new() -> Self {
        let start_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            seq_base: start_ms * 1_000,
            ..Self::default()
        }
    }

    /// Counts an accepted pulse and returns its event sequence number.
    pub fn next_seq(&self) -> u64 {
        self.seq_base
            + self
                .accepted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }
}

/// Everything a request handler may use.
pub struct App {
    pub db: Db,
    pub tokens: Arc<tokens::Tokens>,
    pub languages: languages::Languages,
    pub committer: commit::Committer,
    pub rate_limit: rate::RateLimit,
    pub events: events::EventSender,
    /// The live feed (`/live`), fed from `events` by its own task.
    pub live: Arc<live::Live>,
    pub stats: Stats,
    stop: tokio_util::sync::CancellationToken,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

pub type AppState = Arc<App>;

impl App {
    /// Loads tokens and languages, opens the spool and starts the committer,
    /// the spool replayer, the token refresher and the live feed's hub.
    pub async fn start(db: Db, config: &IngestConfig) -> Result<AppState, StartError> {
        let tokens = Arc::new(tokens::Tokens::default());
        tokens.refresh(&db).await?;
        let languages = languages::Languages::default();
        languages.load(&db).await?;
        let spool = spool::Spool::open(&config.spool_dir).map_err(|e| StartError::Spool {
            dir: config.spool_dir.clone(),
            source: e,
        })?;
        let stop = tokio_util::sync::CancellationToken::new();
        let (committer, mut tasks) = commit::Committer::start(
            db.clone(),
            spool,
            config.replay_delay,
            config.inserts_in_flight,
            stop.clone(),
        );
        tasks.push(tokio::spawn(
            tokens.clone().refresh_loop(db.clone(), stop.clone()),
        ));
        let events = events::channel();
        let live = Arc::new(live::Live::default());
        tasks.push(tokio::spawn(
            live.clone().run(events.subscribe(), stop.clone()),
        ));
        Ok(Arc::new(App {
            db,
            tokens,
            languages,
            committer,
            rate_limit: rate::RateLimit::new(config.rate_per_minute, config.rate_burst),
            events,
            live,
            stats: Stats::new(),
            stop,
            tasks: std::sync::Mutex::new(tasks),
        }))
    }

    /// Stops the background tasks: queued pulses are written (to ClickHouse
    /// or the spool), refreshing and replaying end, live streams end. Call
    /// after the HTTP server has finished its requests; call
    /// `app.live.close()` as soon as shutdown begins, since a graceful HTTP
    /// shutdown waits for open live streams.
    pub async fn shutdown(&self) {
        self.live.close();
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load from clickhouse: {0}")]
    Store(#[from] sql::Error),
    #[error("cannot open spool {dir}: {source}")]
    Spool {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// A listener for the API on `addr`, with `TCP_NODELAY` on every accepted
/// connection: small responses must not wait for Nagle's algorithm (it costs
/// tens of milliseconds per keep-alive request).
pub async fn listen(
    addr: std::net::SocketAddr,
) -> std::io::Result<impl axum::serve::Listener<Addr = std::net::SocketAddr>> {
    use axum::serve::ListenerExt;
    Ok(tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    }))
}

/// Every route of the API, in one place.
pub fn router(app: AppState) -> Router {
    let read_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD]);
    let pulses = post(api::pulses::create).layer(DefaultBodyLimit::max(limits::MAX_BODY_BYTES));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/api/my/pulses", pulses.clone())
        .route("/api/my/pulses/", pulses)
        .route(
            "/api/users/{name}",
            get(api::users::show).layer(read_cors.clone()),
        )
        .route("/live", get(live::front).layer(read_cors.clone()))
        .route("/live/users/{name}", get(live::profile).layer(read_cors))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn(error::log_server_errors))
        .with_state(app)
}
