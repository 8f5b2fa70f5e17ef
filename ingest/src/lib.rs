//! The codestats HTTP API: health, the Code::Stats pulse endpoint (acknowledged
//! from a durable local log, shipped to ClickHouse in large blocks), and the
//! read API.

pub mod api;
pub mod error;
pub mod events;
pub mod health;
pub mod import;
pub mod languages;
pub mod limits;
pub mod live;
pub mod log;
pub mod metrics;
pub mod nodes;
pub mod pulse;
pub mod rate;
pub mod relay;
pub mod server;
pub mod ship;
pub mod tokens;
pub mod upgrade;
pub mod visibility;
pub mod wakatime;

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
    time::Duration,
};
use tower_http::cors::{Any, CorsLayer};

/// How ingest is set up; `IngestConfig::new` gives the defaults.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The ingest log (`DATA_DIR/log`).
    pub log_dir: PathBuf,
    /// `CODESTATS_LOG_MAX_BYTES`: cap on the log's size on disk
    /// (`log::MAX_LOG_BYTES`); past it pulses are refused with 503.
    pub log_max_bytes: u64,
    /// Longest the oldest logged pulse waits before its block is written
    /// to ClickHouse (`ship::MAX_BLOCK_AGE`).
    pub block_max_age: Duration,
    /// Longest a block's INSERT runs before it is ended
    /// (`ship::INSERT_TIMEOUT`).
    pub insert_timeout: Duration,
    /// Where batches of versions before the log waited (`DATA_DIR/spool`),
    /// shipped at start.
    pub legacy_spool_dir: PathBuf,
    /// `CODESTATS_RATE_PER_MINUTE`: sustained pulses per minute per token.
    pub rate_per_minute: u32,
    /// `CODESTATS_RATE_BURST`: pulses per token at once on top of that.
    pub rate_burst: u32,
    /// Longest a pulse may wait to be logged (`limits::APPEND_TIMEOUT`).
    pub append_timeout: Duration,
    /// Longest a request body may take to arrive (`server::BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// Most live streams open at once (`live::MAX_STREAMS`).
    pub max_live_streams: u64,
    /// Where the read API's documents are (`None`: every user is 404).
    pub read_api: Option<api::users::ReadApiFiles>,
    /// `CODESTATS_STORE_ENTITIES`: keep heartbeats' file paths in clear
    /// (by default only their hash is stored).
    pub store_entities: bool,
    /// `CODESTATS_KEYSTROKE_TIMEOUT_SECS`: gaps between heartbeats up to
    /// this are coding time (`sql::coding::DEFAULT_KEYSTROKE_TIMEOUT`).
    pub keystroke_timeout: Duration,
    /// Whether this node's live feed shows the pulses of the other nodes
    /// sharing its ClickHouse, and writes its own for them (`relay`): on
    /// when several `serve` processes share one store. Off, `/live` shows
    /// this node's pulses only. `serve` sets it; no setting of its own.
    pub live_relay: bool,
}

impl IngestConfig {
    pub fn new(data_dir: &std::path::Path) -> Self {
        Self {
            log_dir: data_dir.join("log"),
            log_max_bytes: log::MAX_LOG_BYTES,
            block_max_age: ship::MAX_BLOCK_AGE,
            insert_timeout: ship::INSERT_TIMEOUT,
            legacy_spool_dir: data_dir.join("spool"),
            rate_per_minute: limits::DEFAULT_RATE_PER_MINUTE,
            rate_burst: limits::DEFAULT_RATE_BURST,
            append_timeout: limits::APPEND_TIMEOUT,
            body_read_timeout: server::BODY_READ_TIMEOUT,
            max_live_streams: live::MAX_STREAMS,
            read_api: None,
            store_entities: false,
            keystroke_timeout: sql::coding::DEFAULT_KEYSTROKE_TIMEOUT,
            live_relay: false,
        }
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    /// Live events numbered so far: accepted pulses and relayed ones.
    events: AtomicU64,
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
        self.accepted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.relayed_seq()
    }

    /// The event sequence number of a pulse another node accepted (the
    /// live relay): not counted as accepted here.
    pub fn relayed_seq(&self) -> u64 {
        self.seq_base
            + self
                .events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }
}

/// Everything a request handler may use.
pub struct App {
    pub db: Db,
    pub tokens: Arc<tokens::Tokens>,
    pub languages: languages::Languages,
    /// The language aliases in force, reloaded with the tokens.
    pub shown_names: Arc<languages::ShownNames>,
    /// Where accepted pulses are made durable before the 201.
    pub log: log::Log,
    /// Copies the log into ClickHouse; its watermark is the rollups'.
    pub shipper: ship::Shipper,
    pub rate_limit: rate::RateLimit,
    pub events: events::EventSender,
    /// The live feed (`/live`), fed from `events` by its own task.
    pub live: Arc<live::Live>,
    /// Who is public now: asked by the live feed and the read API.
    pub visibility: Arc<visibility::Visibility>,
    /// The live relay, when `IngestConfig::live_relay` is on.
    pub relay: Option<relay::Relay>,
    /// Where the read API finds what the rollups published.
    pub read_api: api::users::ReadApi,
    pub stats: Arc<Stats>,
    /// Longest a request body may take to arrive.
    pub body_read_timeout: std::time::Duration,
    /// Heartbeats logged lately, so copies are not logged again.
    pub recent_heartbeats: wakatime::recent::Recent,
    pub store_entities: bool,
    pub keystroke_timeout: Duration,
    stop: tokio_util::sync::CancellationToken,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

pub type AppState = Arc<App>;

impl App {
    /// Loads tokens and languages, opens the log and starts the appender,
    /// the shipper (which first ships a legacy spool, if any), the token
    /// refresher, the live feed's hub and, with `live_relay`, the relay.
    pub async fn start(db: Db, config: &IngestConfig) -> Result<AppState, StartError> {
        let tokens = Arc::new(tokens::Tokens::default());
        tokens.refresh(&db).await?;
        let visibility = Arc::new(visibility::Visibility::default());
        visibility.refresh(&db).await?;
        let languages = languages::Languages::default();
        languages.load(&db).await?;
        let shown_names = Arc::new(languages::ShownNames::default());
        shown_names.refresh(&db).await?;
        let log_error = |source| {
            StartError::Log(log::OpenError {
                dir: config.log_dir.clone(),
                source,
            })
        };
        let mut state = ship::state::State::load(&config.log_dir).map_err(log_error)?;
        let log = log::Log::open(
            &config.log_dir,
            state.shipped,
            config.log_max_bytes,
            config.append_timeout,
        )?;
        let durable = *log.durable().borrow();
        if state.shipped > durable || state.intent.is_some_and(|i| i.to > durable) {
            // The log lost what the state points into (a disk replaced or
            // restored apart from `shipper.json`): ship from where it ends.
            tracing::error!(
                shipped = ?state.shipped,
                ?durable,
                intent = ?state.intent,
                "ingest log: shipper.json points past the log; starting after the log's end"
            );
            state = ship::state::State {
                shipped: state.shipped.min(durable),
                intent: None,
            };
        }
        let stop = tokio_util::sync::CancellationToken::new();
        let (shipper, ship_task) = ship::Shipper::start(
            db.clone(),
            log.clone(),
            state,
            config.block_max_age,
            config.insert_timeout,
            upgrade::pending(&config.legacy_spool_dir),
            stop.clone(),
        );
        let mut tasks = vec![ship_task];
        let events = events::channel();
        let live = Arc::new(
            live::Live::new(visibility.clone())
                .with_names(shown_names.clone())
                .with_max_streams(config.max_live_streams),
        );
        tasks.push(tokio::spawn(refresh_loop(
            db.clone(),
            tokens.clone(),
            visibility.clone(),
            shown_names.clone(),
            live.clone(),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(
            live.clone().run(events.subscribe(), stop.clone()),
        ));
        let stats = Arc::new(Stats::new());
        let relay = config.live_relay.then(|| {
            let (relay, relay_tasks) =
                relay::Relay::start(&db, &events, live.clone(), stats.clone(), &stop);
            tasks.extend(relay_tasks);
            relay
        });
        let app = Arc::new(App {
            db,
            tokens,
            languages,
            shown_names,
            log,
            shipper,
            rate_limit: rate::RateLimit::new(config.rate_per_minute, config.rate_burst),
            events,
            live,
            visibility,
            relay,
            read_api: api::users::ReadApi::new(config.read_api.clone()),
            stats,
            body_read_timeout: config.body_read_timeout,
            recent_heartbeats: wakatime::recent::Recent::new(limits::RECENT_HEARTBEATS),
            store_entities: config.store_entities,
            keystroke_timeout: config.keystroke_timeout,
            stop,
            tasks: std::sync::Mutex::new(tasks),
        });
        let sampler = tokio::spawn(metrics::sample_log(Arc::downgrade(&app), app.stop.clone()));
        app.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sampler);
        Ok(app)
    }

    /// Returns once ClickHouse holds every pulse acknowledged before the
    /// call (tests, benchmarks, tools).
    pub async fn flush(&self) {
        let until = *self.log.durable().borrow();
        self.shipper.flush(until).await;
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

    /// Stops the background tasks: queued pulses are logged, the shipper
    /// writes what it can within `ship::SHUTDOWN_DRAIN` (the rest waits in
    /// the log for the next start), refreshing and the live relay end
    /// (events not yet relayed are dropped), live streams end. Call
    /// after the HTTP server has finished its requests; call
    /// `app.live.close()` as soon as shutdown begins, since a graceful HTTP
    /// shutdown waits for open live streams.
    pub async fn shutdown(&self) {
        self.live.close();
        self.log.close().await;
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Reloads tokens, the public users and the language aliases every
/// [`tokens::TOKEN_REFRESH`] until `stop`; a failed reload keeps the last
/// good sets.
async fn refresh_loop(
    db: Db,
    tokens: Arc<tokens::Tokens>,
    visibility: Arc<visibility::Visibility>,
    shown_names: Arc<languages::ShownNames>,
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
            metrics::clickhouse_error("refresh");
            tracing::warn!(error = %e, "cannot refresh tokens; keeping the last set");
        }
        match visibility.refresh(&db).await {
            Ok(gone) => {
                for user_id in gone {
                    live.forget_user(user_id);
                }
            }
            Err(e) => {
                metrics::clickhouse_error("refresh");
                tracing::warn!(error = %e, "cannot refresh public users; keeping the last set")
            }
        }
        if let Err(e) = shown_names.refresh(&db).await {
            metrics::clickhouse_error("refresh");
            tracing::warn!(error = %e, "cannot refresh language aliases; keeping the last set");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load from clickhouse: {0}")]
    Store(#[from] sql::Error),
    #[error(transparent)]
    Log(#[from] log::OpenError),
}

/// Where WakaTime clients are pointed: `/api/v1`, and the prefixes other
/// WakaTime-compatible servers use, so existing setups only change the host.
pub const WAKATIME_PREFIXES: [&str; 3] =
    ["/api/v1", "/api/compat/wakatime/v1", "/api/hackatime/v1"];

fn wakatime_routes() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in WAKATIME_PREFIXES {
        let user = format!("{prefix}/users/current");
        router = router
            .route(&format!("{user}/heartbeats"), post(api::heartbeats::single))
            .route(
                &format!("{user}/heartbeats.bulk"),
                post(api::heartbeats::bulk),
            )
            .route(
                &format!("{user}/statusbar/today"),
                get(api::statusbar::today),
            )
            .route(&format!("{user}/summaries"), get(api::statusbar::summaries));
    }
    router
}

/// Every route of the API, in one place.
pub fn router(app: AppState) -> Router {
    router_with(app, Routes::ALL)
}

/// Which of ingest's routes a node answers (`serve --role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    /// The plugin APIs: pulses, heartbeats and the status bar.
    pub write: bool,
    /// The read API and the live feed.
    pub read: bool,
}

impl Routes {
    pub const ALL: Self = Self {
        write: true,
        read: true,
    };
}

/// The router of `routes`, with `/healthz` always.
pub fn router_with(app: AppState, routes: Routes) -> Router {
    let read_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD]);
    let mut router = Router::new().route("/healthz", get(health::healthz));
    if routes.write {
        // The handler bounds its body itself (`api::pulses::read_body`).
        let pulses = post(api::pulses::create);
        router = router
            .route("/api/my/pulses", pulses.clone())
            .route("/api/my/pulses/", pulses)
            .merge(wakatime_routes());
    }
    if routes.read {
        router = router
            .route(
                "/api/users/{name}",
                get(api::users::show).layer(read_cors.clone()),
            )
            .route(
                "/api/users/{name}/coding-time",
                get(api::users::coding_time).layer(read_cors.clone()),
            )
            .route("/live", get(live::front).layer(read_cors.clone()))
            .route("/live/users/{name}", get(live::profile).layer(read_cors));
    }
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn(error::log_server_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panicked,
        ))
        .with_state(app)
}
