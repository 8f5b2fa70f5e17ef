//! `codestats serve`: the HTTP service, on top of the configured ClickHouse
//! (or a local one it starts, supervises and stops).

use crate::{config::Config, store::Store};
use anyhow::Context;
use axum::serve::ListenerExt;
use std::net::SocketAddr;

pub async fn run(config: &Config, listen: SocketAddr) -> anyhow::Result<()> {
    let store = Store::open_migrated(config).await?;
    let result = serve(config, &store, listen).await;
    store.close().await;
    result
}

async fn serve(config: &Config, store: &Store, listen: SocketAddr) -> anyhow::Result<()> {
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
    let app = ingest::App::start(store.db.clone(), &config.ingest)
        .await
        .context("cannot start ingest")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?
        // Small responses must not wait for Nagle's algorithm.
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    tracing::info!(%listen, "serving");
    let served = axum::serve(listener, ingest::router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("http server failed");
    tracing::info!("shutting down");
    app.shutdown().await;
    served
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
