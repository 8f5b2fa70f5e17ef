//! Opening the store the configuration names: the ClickHouse at
//! `CODESTATS_CLICKHOUSE_URL`, or the data dir's local server — the one
//! already running (from `serve` or `clickhouse start`), or one started for
//! the duration of this command.
//!
//! The local server is logged in to with the passwords of its credentials
//! file (`DATA_DIR/clickhouse/credentials`); a configured URL with
//! `CODESTATS_CLICKHOUSE_USER` / `_PASSWORD` and `CODESTATS_ANALYST_USER` /
//! `_PASSWORD`.

use crate::config::Config;
use anyhow::Context;
use sql::{
    AnalystConfig, Db,
    local_server::{self, LocalServer, LocalServerConfig},
};

pub struct Store {
    pub db: Db,
    /// How `codestats sql` logs in to the same server.
    analyst: AnalystConfig,
    local: Option<LocalServer>,
}

impl Store {
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let Some(url) = &config.clickhouse.url else {
            if let Some(cluster) = &config.clickhouse.cluster {
                anyhow::bail!(
                    "CODESTATS_CLICKHOUSE_CLUSTER={cluster} needs CODESTATS_CLICKHOUSE_URL: \
                     the embedded server is no cluster"
                );
            }
            return Self::open_local(config).await;
        };
        let mut db = Db::new(url, &config.clickhouse)?;
        if let Some(cluster) = &config.clickhouse.cluster {
            db = db
                .with_cluster(cluster, &config.clickhouse.cluster_urls)
                .await
                .with_context(|| format!("cannot reach the servers of cluster {cluster}"))?;
            tracing::info!(cluster = %cluster, "cluster mode");
        }
        Ok(Self {
            db,
            analyst: AnalystConfig::from_env(),
            local: None,
        })
    }

    async fn open_local(config: &Config) -> anyhow::Result<Self> {
        let local = LocalServerConfig::for_data_dir(&config.data_dir);
        let server = if local_server::ping(local.http_port).await {
            tracing::debug!(url = %local.url(), "using the running local clickhouse");
            local
                .running_credentials()
                .await
                .context("cannot log in to the local clickhouse")?;
            None
        } else {
            tracing::info!(dir = %local.dir.display(), "starting local clickhouse");
            Some(
                LocalServer::start(local.clone())
                    .await
                    .context("cannot start the local clickhouse")?,
            )
        };
        let writer = local
            .clickhouse_config(&config.clickhouse.database)
            .context("cannot read the local clickhouse's credentials")?;
        let analyst = local
            .analyst_config()
            .context("cannot read the local clickhouse's credentials")?;
        Ok(Self {
            db: Db::new(&local.url(), &writer)?,
            analyst,
            local: server,
        })
    }

    /// How the analyst logs in to this store's server.
    pub fn analyst(&self) -> &AnalystConfig {
        &self.analyst
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
