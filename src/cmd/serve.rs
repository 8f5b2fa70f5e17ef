//! `codestats serve`: the HTTP service, on top of the configured ClickHouse
//! (or a local one it starts, supervises and stops).

use crate::{cli::Role, config::Config, store::Store};
use anyhow::Context;
use jobs::{Rollups, Scope};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio_cron_scheduler::JobScheduler;

/// The listening socket a supervisor passed, taken by [`take_passed_socket`].
static PASSED: std::sync::Mutex<Option<std::net::TcpListener>> = std::sync::Mutex::new(None);

/// Takes the first socket a supervisor passed (`LISTEN_FDS`, `LISTEN_PID`:
/// systemd socket activation), if any. Call before any other thread starts:
/// it clears those variables and marks the socket close-on-exec, so neither
/// reaches a child such as the embedded ClickHouse.
pub fn take_passed_socket() -> anyhow::Result<()> {
    let socket = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .context("LISTEN_FDS: the first passed socket is not a TCP listener")?;
    *PASSED.lock().unwrap_or_else(|e| e.into_inner()) = socket;
    Ok(())
}

/// What a node does, from `--role`.
#[derive(Debug, Clone, Copy)]
struct Roles {
    ingest: bool,
    web: bool,
    builder: bool,
}

impl Roles {
    fn of(roles: &[Role]) -> Self {
        let has = |r: Role| roles.contains(&r) || roles.contains(&Role::All);
        Self {
            ingest: has(Role::Ingest),
            web: has(Role::Web),
            builder: has(Role::Builder),
        }
    }
}

pub async fn run(
    config: &Config,
    listen: SocketAddr,
    metrics_listen: &str,
    roles: &[Role],
) -> anyhow::Result<()> {
    // Roles named, even every one: this node shares the store with others.
    let named = roles != [Role::All];
    let roles = Roles::of(roles);
    let _lock = crate::lock::ServeLock::acquire(&config.data_dir)?;
    // Before the store: connections that come while it opens wait in the
    // backlog.
    let listener = listener(listen).await?;
    let listen = listener.local_addr()?;
    // Checked before anything starts: a wrong address is a config error.
    let metrics_listen = crate::exporter::parse_listen(metrics_listen, listen)?;
    // Installed before ingest starts, so nothing it counts is lost; with
    // metrics off none is, and every `metrics` call is a no-op.
    let metrics = match metrics_listen {
        Some(addr) => Some((addr, crate::exporter::install()?)),
        None => None,
    };
    let store = Store::open_migrated(config).await?;
    let several = named || store.db.cluster().is_some();
    let result = serve(config, &store, listener, metrics, roles, several).await;
    store.close().await;
    result
}

/// The public listener: the socket the supervisor passed, which lives on
/// across restarts, or a socket bound to `listen`.
async fn listener(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let passed = PASSED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(socket) = passed {
        socket
            .set_nonblocking(true)
            .context("cannot use the passed socket")?;
        let socket = tokio::net::TcpListener::from_std(socket)?;
        tracing::info!(listen = %socket.local_addr()?, "listening on the socket passed by the supervisor");
        return Ok(socket);
    }
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

async fn serve(
    config: &Config,
    store: &Store,
    listener: tokio::net::TcpListener,
    metrics: Option<(SocketAddr, metrics_exporter_prometheus::PrometheusHandle)>,
    roles: Roles,
    several: bool,
) -> anyhow::Result<()> {
    // Other nodes may share the store (a cluster, or roles named): then the
    // live feed goes through ClickHouse and the rollups run under the
    // builder lease.
    tracing::info!(?roles, several, "node");
    let version = store
        .db
        .version()
        .await
        .context("clickhouse does not answer")?;
    tracing::info!(
        clickhouse = %store.db.url(),
        version,
        database = store.db.database(),
        embedded = store.owns_local_server(),
        "store ready"
    );
    let limits = ingest::server::ServerLimits::default();
    let mut ingest_config = config.ingest.clone();
    // Pulses accepted by other nodes reach this node's live feed through
    // ClickHouse.
    ingest_config.live_relay = several;
    // Live streams never take more than half the connections.
    ingest_config.max_live_streams = ingest_config
        .max_live_streams
        .min(limits.max_connections as u64 / 2);
    ingest_config.read_api = Some(ingest::api::users::ReadApiFiles {
        dir: super::build::site_dir(config),
        file_of: builder::paths::api_user_file,
        coding_file_of: builder::paths::api_coding_file,
    });
    let app = ingest::App::start(store.db.clone(), &ingest_config)
        .await
        .context("cannot start ingest")?;
    let listen = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let stats = Arc::new(ingest::server::ServerStats::default());
    let metrics_server = match metrics {
        Some((addr, handle)) => {
            Some(crate::exporter::serve(addr, handle, stats.clone(), stop.child_token()).await?)
        }
        None => None,
    };
    let mut config = config.clone();
    if std::env::var_os("CODESTATS_PUBLIC_URL").is_none() {
        config.public_url = format!("http://{listen}");
    }
    let config = &config;
    let watermark = app.shipper.watermark.clone();
    let mut rollups = super::build::rollups(config, store)?;
    let mut node_tasks = Vec::new();
    if several {
        (rollups, node_tasks) = share_store(config, store, roles, watermark, rollups).await?;
    } else {
        rollups = rollups.with_watermark(Arc::new(move || watermark.settled_before()));
    }
    let rollups = Arc::new(rollups);
    let rollup_tasks = if roles.builder {
        Some(start_rollups(config, rollups.clone(), &app).await?)
    } else {
        None
    };

    let mut web_config = config.web.clone().map_err(anyhow::Error::msg)?;
    web_config.public_url = config.public_url.clone();
    let web = web::Web::new(
        store.db.clone(),
        app.clone(),
        web_config,
        config.theme_dir.as_deref(),
        Some(site_hook(rollups.clone())),
    )
    .context("cannot start accounts on the web")?;
    let housekeeping = tokio::spawn(housekeeping(store.db.clone()));

    let site = super::build::site_dir(config);
    let routes = ingest::Routes {
        write: roles.ingest,
        read: roles.web,
    };
    let mut router = ingest::router_with(app.clone(), routes);
    if roles.web {
        router = web::router(web.clone()).merge(router);
    }
    let router = router.route_layer(axum::middleware::from_fn(ingest::metrics::track_route));
    let router = if roles.web {
        router.fallback_service(
            builder::serve::router(site)
                .layer(axum::middleware::from_fn_with_state(
                    web.clone(),
                    web::embeds::site_gate,
                ))
                .layer(axum::middleware::from_fn(ingest::metrics::track_site)),
        )
    } else {
        router.fallback(ingest::error::not_found)
    };
    tracing::info!(%listen, "serving");
    tracing::info!(
        max_connections = limits.max_connections,
        max_live_streams = ingest_config.max_live_streams,
        "connection caps"
    );
    let server = ingest::server::serve(listener, router, limits, stats, stop.clone());
    {
        let app = app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            // Live streams never end by themselves: close them so the
            // graceful shutdown can finish.
            app.live.close();
            stop.cancel();
        });
    }
    // Returns once every connection is closed: finished within the grace
    // period, or closed at its end.
    server.await;
    if let Some(metrics) = metrics_server {
        metrics.abort();
    }
    housekeeping.abort();
    web.shutdown().await;
    for task in node_tasks {
        task.abort();
    }
    if let Some(tasks) = rollup_tasks {
        tasks.stop().await;
    }
    tracing::debug!("rollups stopped");
    app.shutdown().await;
    tracing::debug!("ingest stopped");
    Ok(())
}

/// A node that shares the store: an ingest node reports its insertion
/// watermark; a builder reads no further than the other nodes' and runs
/// only under the builder lease; any other node never runs the rollups.
/// Returns the rollups and the tasks that do it.
async fn share_store(
    config: &Config,
    store: &Store,
    roles: Roles,
    watermark: Arc<ingest::ship::Watermark>,
    rollups: Rollups,
) -> anyhow::Result<(Rollups, Vec<tokio::task::JoinHandle<()>>)> {
    let node_id = ingest::nodes::node_id(&config.data_dir).context("cannot read the node id")?;
    let mut tasks = Vec::new();
    if roles.ingest {
        tasks.push(ingest::nodes::report(
            store.db.clone(),
            node_id,
            watermark.clone(),
        ));
    }
    if !roles.builder {
        return Ok((rollups.with_lease(jobs::lease::Lease::never()), tasks));
    }
    let (others, task) = ingest::nodes::Others::follow(store.db.clone(), node_id).await;
    tasks.push(task);
    let (lease, task) = jobs::lease::Lease::start(
        store.db.clone(),
        Duration::from_secs(config.lease_term_secs),
    );
    tasks.push(task);
    let rollups = rollups
        .with_watermark(Arc::new(move || {
            watermark.settled_before().min(others.lowest())
        }))
        .with_lease(lease);
    Ok((rollups, tasks))
}

/// The rollups of a running server: a full run now, then the schedule, and
/// every user ingest accepts a pulse from is marked for the next run.
struct RollupTasks {
    scheduler: JobScheduler,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RollupTasks {
    async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "rollup scheduler did not stop cleanly");
        }
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn start_rollups(
    config: &Config,
    rollups: Arc<Rollups>,
    app: &ingest::AppState,
) -> anyhow::Result<RollupTasks> {
    let mut events = app.events.subscribe();
    let marker = rollups.clone();
    let mark = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => marker.mark_dirty(event.user_id),
                // Missed users are found through `received_at` anyway.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let first = rollups.clone();
    let initial = tokio::spawn(async move {
        if let Err(e) = first.run(Scope::Full).await {
            tracing::error!(
                error = format!("{e:#}"),
                "initial rollup failed; the schedule retries"
            );
        }
    });
    let every = Duration::from_secs(config.rollup_interval_secs.max(1));
    let scheduler = jobs::schedule::start(rollups, every)
        .await
        .context("cannot start the rollup schedule")?;
    Ok(RollupTasks {
        scheduler,
        tasks: vec![mark, initial],
    })
}

/// How often `serve` runs the accounts' housekeeping (at start, then this often).
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(86_400);

async fn housekeeping(db: sql::Db) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = web::housekeeping(&db).await {
            tracing::warn!(error = %e, "account housekeeping failed; trying again later");
        }
    }
}

/// What the web pages do when a user's public state changed: their pages
/// go at once when they are no longer public, then an incremental rollup
/// rebuilds them and the shared pages (waited for up to
/// `web::config::SITE_UPDATE_WAIT`, then left running). Changes that arrive
/// while a rollup runs share the next one: however many changes come, at
/// most one run waits.
fn site_hook(rollups: Arc<Rollups>) -> web::SiteHook {
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(SITE_UPDATES_QUEUED);
    let runner = rollups.clone();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut waiting = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiting.push(more);
            }
            if let Err(e) = runner.run(Scope::Incremental).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "rollup after an account change failed"
                );
            }
            for done in waiting {
                let _ = done.send(());
            }
        }
    });
    Arc::new(move |change: web::SiteChange| {
        let rollups = rollups.clone();
        let tx = tx.clone();
        Box::pin(async move {
            if !change.public {
                let r = rollups.clone();
                let name = change.username.clone();
                match tokio::task::spawn_blocking(move || r.builder().remove_user(&name)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(user = %change.username, error = %e, "cannot remove a user's pages")
                    }
                    Err(e) => tracing::error!(error = %e, "removing a user's pages panicked"),
                }
            }
            rollups.mark_dirty(change.user_id);
            let (done, finished) = tokio::sync::oneshot::channel();
            let wait = async {
                if tx.send(done).await.is_ok() {
                    let _ = finished.await;
                }
            };
            if tokio::time::timeout(web::config::SITE_UPDATE_WAIT, wait)
                .await
                .is_err()
            {
                tracing::info!(user = %change.username, "site update goes on in the background");
            }
        })
    })
}

/// Account changes that may wait for the next site update at once.
const SITE_UPDATES_QUEUED: usize = 1024;

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
