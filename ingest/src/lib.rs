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
pub mod server;
pub mod spool;
pub mod tokens;
pub mod visibility;

use axum::{
    Router,
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
    /// Longest a pulse may wait in the committer's queue
    /// (`limits::COMMIT_TIMEOUT`).
    pub commit_timeout: std::time::Duration,
    /// Longest a request body may take to arrive (`server::BODY_READ_TIMEOUT`).
    pub body_read_timeout: std::time::Duration,
    /// Most live streams open at once (`live::MAX_STREAMS`).
    pub max_live_streams: u64,
    /// Where the read API's documents are (`None`: every user is 404).
    pub read_api: Option<api::users::ReadApiFiles>,
}

impl IngestConfig {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            spool_dir: data_dir.join("spool"),
            rate_per_minute: limits::DEFAULT_RATE_PER_MINUTE,
            rate_burst: limits::DEFAULT_RATE_BURST,
            replay_delay: commit::REPLAY_DELAY,
            inserts_in_flight: commit::MAX_INSERTS_IN_FLIGHT,
            commit_timeout: limits::COMMIT_TIMEOUT,
            body_read_timeout: server::BODY_READ_TIMEOUT,
            max_live_streams: live::MAX_STREAMS,
            read_api: None,
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
    /// Who is public now: asked by the live feed and the read API.
    pub visibility: Arc<visibility::Visibility>,
    /// Where the read API finds what the rollups published.
    pub read_api: api::users::ReadApi,
    pub stats: Stats,
    /// Longest a request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
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
        let visibility = Arc::new(visibility::Visibility::default());
        visibility.refresh(&db).await?;
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
            config.commit_timeout,
            stop.clone(),
        );
        let events = events::channel();
        let live =
            Arc::new(live::Live::new(visibility.clone()).with_max_streams(config.max_live_streams));
        tasks.push(tokio::spawn(refresh_loop(
            db.clone(),
            tokens.clone(),
            visibility.clone(),
            live.clone(),
            stop.clone(),
        )));
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
            visibility,
            read_api: api::users::ReadApi::new(config.read_api.clone()),
            stats: Stats::new(),
            body_read_timeout: config.body_read_timeout,
            stop,
            tasks: std::sync::Mutex::new(tasks),
        }))
    }

    /// A user was made private or deleted by this process (after the change
    /// is written): the live feed and the read API stop showing them now.
    pub fn user_hidden(&self, user_id: u64) {
        self.visibility.hide(user_id);
        self.live.forget_user(user_id);
    }

    /// A user was made public by this process (after the change is written).
    pub fn user_shown(&self, user_id: u64, username: &str) {
        self.visibility.show(user_id, username);
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

/// Reloads tokens and the public users every [`tokens::TOKEN_REFRESH`]
/// until `stop`; a failed reload keeps the last good sets.
async fn refresh_loop(
    db: Db,
    tokens: Arc<tokens::Tokens>,
    visibility: Arc<visibility::Visibility>,
    live: Arc<live::Live>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(tokens::TOKEN_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = tokens.refresh(&db).await {
            tracing::warn!(error = %e, "cannot refresh tokens; keeping the last set");
        }
        match visibility.refresh(&db).await {
            Ok(gone) => {
                for user_id in gone {
                    live.forget_user(user_id);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot refresh public users; keeping the last set")
            }
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

/// Every route of the API, in one place.
pub fn router(app: AppState) -> Router {
    let read_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD]);
    // The handler bounds its body itself (`api::pulses::read_body`).
    let pulses = post(api::pulses::create);
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
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panicked,
        ))
        .with_state(app)
}
