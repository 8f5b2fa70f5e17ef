//! `TestApp`: the ingest API on a real HTTP server on loopback, over a fresh
//! database of the real ClickHouse.

#![allow(dead_code)] // each test binary uses part of it

pub mod sse;

use ingest::{
    App, AppState, IngestConfig,
    server::{RunningServer, ServerLimits},
};
use reqwest::StatusCode;
use serde_json::Value;
use sql::Db;
use std::{net::SocketAddr, time::Duration};

pub struct TestApp {
    pub db: Db,
    pub app: AppState,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub data: tempfile::TempDir,
    pub server: ingest::server::RunningServer,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn start(db: Db) -> Self {
        Self::with_config(db, |_| {}).await
    }

    pub async fn with_config(db: Db, configure: impl FnOnce(&mut IngestConfig)) -> Self {
        Self::with_limits(db, configure, ServerLimits::default()).await
    }

    /// The same, with the server's limits given (e.g. a lowered connection
    /// cap or timeouts).
    pub async fn with_limits(
        db: Db,
        configure: impl FnOnce(&mut IngestConfig),
        limits: ServerLimits,
    ) -> Self {
        Self::build(db, configure, limits, None).await
    }

    /// The API with the static site in `site` mounted behind it, as
    /// `codestats serve` does.
    pub async fn with_site(
        db: Db,
        configure: impl FnOnce(&mut IngestConfig),
        site: &std::path::Path,
    ) -> Self {
        Self::build(db, configure, ServerLimits::default(), Some(site)).await
    }

    pub async fn build(
        db: Db,
        configure: impl FnOnce(&mut IngestConfig),
        limits: ServerLimits,
        site: Option<&std::path::Path>,
    ) -> Self {
        init_logs();
        let data = tempfile::tempdir().unwrap();
        let mut config = IngestConfig::new(data.path());
        // Blocks go out at once: tests read ClickHouse right after posting.
        config.block_max_age = Duration::from_millis(20);
        configure(&mut config);
        let app = App::start(db.clone(), &config).await.unwrap();
        let mut router = ingest::router(app.clone());
        if let Some(site) = site {
            router = router.fallback_service(builder::serve::router(site));
        }
        let server = RunningServer::start(([127, 0, 0, 1], 0).into(), router, limits)
            .await
            .unwrap();
        let addr = server.addr;
        Self {
            db,
            app,
            addr,
            client: reqwest::Client::new(),
            data,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A user with one machine; returns the machine's token, already known
    /// to the running app.
    pub async fn machine(&self, user: &str, machine: &str, private: bool) -> String {
        if sql::accounts::find_user(&self.db, user)
            .await
            .unwrap()
            .is_none()
        {
            sql::accounts::add_user(&self.db, user, "", private)
                .await
                .unwrap();
        }
        let (_, token) = sql::accounts::add_machine(&self.db, user, machine)
            .await
            .unwrap();
        self.app.tokens.refresh(&self.db).await.unwrap();
        self.app.visibility.refresh(&self.db).await.unwrap();
        token
    }

    pub async fn post_raw(&self, token: Option<&str>, body: impl Into<reqwest::Body>) -> Response {
        let mut request = self
            .client
            .post(self.url("/api/my/pulses"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header("X-API-Token", token);
        }
        into_response(request.send().await.unwrap()).await
    }

    pub async fn post(&self, token: &str, body: Value) -> Response {
        self.post_raw(Some(token), body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> Response {
        into_response(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Returns once ClickHouse holds every pulse acknowledged so far.
    pub async fn flush(&self) {
        tokio::time::timeout(Duration::from_secs(60), self.app.flush())
            .await
            .expect("the shipper wrote the log within a minute");
    }

    /// Sum of stored XP and number of stored rows, once every acknowledged
    /// pulse is shipped.
    pub async fn stored(&self) -> (u64, u64) {
        self.flush().await;
        self.db
            .client()
            .query("SELECT sum(xp), count() FROM pulses")
            .fetch_one()
            .await
            .unwrap()
    }
}

pub async fn into_response(r: reqwest::Response) -> Response {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Response {
        status,
        headers,
        body,
    }
}

/// RFC 3339 for `secs_ago` seconds before now, in `offset` like `+03:00`.
pub fn timestamp(secs_ago: i64, offset_minutes: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
    (chrono::Utc::now() - chrono::Duration::seconds(secs_ago))
        .with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs in test output, filtered by `RUST_LOG` (nothing by default).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .try_init();
}

/// A ClickHouse of the test's own, which it may kill, stop and start again,
/// migrated, and a client of its default database.
pub async fn own_clickhouse(
    dir: &std::path::Path,
) -> (
    sql::local_server::LocalServerConfig,
    sql::local_server::LocalServer,
    Db,
) {
    let mut config = sql::local_server::LocalServerConfig::for_data_dir(dir);
    config.http_port = sql::testing::free_port();
    config.tcp_port = sql::testing::free_port();
    let server = sql::local_server::LocalServer::start(config.clone())
        .await
        .unwrap();
    let db = Db::new(
        &config.url(),
        &config
            .clickhouse_config(sql::config::DEFAULT_DATABASE)
            .unwrap(),
    )
    .unwrap();
    sql::migrate::migrate(&db).await.unwrap();
    (config, server, db)
}
