//! Opening the store the configuration names: the ClickHouse at
//! `CODESTATS_CLICKHOUSE_URL`, or the data dir's local server — the one
//! already running (from `serve` or `clickhouse start`), or one started for
//! the duration of this command.

use crate::config::Config;
use anyhow::Context;
use sql::{
    Db,
    local_server::{self, LocalServer, LocalServerConfig},
};

pub struct Store {
    pub db: Db,
    local: Option<LocalServer>,
}

impl Store {
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let (url, local) = match &config.clickhouse.url {
            Some(url) => (url.clone(), None),
            None => {
                let local = LocalServerConfig::for_data_dir(&config.data_dir);
                if local_server::ping(local.http_port).await {
                    tracing::debug!(url = %local.url(), "using the running local clickhouse");
                    (local.url(), None)
                } else {
                    tracing::info!(dir = %local.dir.display(), "starting local clickhouse");
                    let server = LocalServer::start(local.clone())
                        .await
                        .context("cannot start the local clickhouse")?;
                    (server.url(), Some(server))
                }
            }
        };
        let db = Db::new(&url, &config.clickhouse)?;
        Ok(Self { db, local })
    }

    /// Opens the store and brings the schema up to date.
    pub async fn open_migrated(config: &Config) -> anyhow::Result<Self> {
        let store = Self::open(config).await?;
        let applied = sql::migrate::migrate(&store.db)
            .await
            .with_context(|| format!("cannot migrate database {}", store.db.database()))?;
        if !applied.is_empty() {
            tracing::info!(?applied, "schema migrated");
        }
        Ok(store)
    }

    /// Whether this process started (and so supervises) the local server.
    pub fn owns_local_server(&self) -> bool {
        self.local.is_some()
    }

    /// Stops the local server if this process started it.
    pub async fn close(self) {
        // Idle keep-alive connections would delay the server's shutdown.
        drop(self.db);
        if let Some(server) = self.local {
            server.stop().await;
        }
    }
}
