//! Test support: a real ClickHouse for the test suite and one fresh database
//! per test, so tests run in parallel without seeing each other's rows.
//!
//! The server is `CODESTATS_TEST_CLICKHOUSE_URL` when set; otherwise the
//! suite's own local server under `target/test-clickhouse` (HTTP port
//! [`TEST_HTTP_PORT`]), started on first use through the same code as the
//! embedded server and left running for the next test binary
//! (`scripts/test` stops it at the end).

use crate::{
    ClickHouseConfig, Db,
    local_server::{self, LocalServerConfig},
    migrate,
};
use std::path::PathBuf;
use tokio::sync::OnceCell;

/// HTTP port of the test suite's ClickHouse.
pub const TEST_HTTP_PORT: u16 = 28123;
/// Native port of the test suite's ClickHouse.
pub const TEST_TCP_PORT: u16 = 29000;

static SERVER_URL: OnceCell<String> = OnceCell::const_new();

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// The local server config the test suite uses.
pub fn test_server_config() -> LocalServerConfig {
    let mut config = LocalServerConfig::for_data_dir(&target_dir().join("test-clickhouse"));
    config.http_port = TEST_HTTP_PORT;
    config.tcp_port = TEST_TCP_PORT;
    config
}

/// The URL of a running ClickHouse for tests, starting one if needed.
pub async fn server_url() -> String {
    SERVER_URL
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("CODESTATS_TEST_CLICKHOUSE_URL") {
                return url;
            }
            let config = test_server_config();
            if let Err(e) = local_server::start_detached(&config).await {
                // Another test binary may have won the race to start it.
                if !local_server::ping(config.http_port).await {
                    panic!("cannot start the test clickhouse: {e}");
                }
            }
            config.url()
        })
        .await
        .clone()
}

/// A database name for a test, from its path.
pub fn database_name(test_path: &str) -> String {
    let mut name: String = test_path
        .trim_end_matches("::f")
        .replace("::{{closure}}", "")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    format!("t_{}", name.trim_matches('_'))
}

/// The ClickHouse settings tests pass to a codestats process they start.
pub fn clickhouse_config(database: &str) -> ClickHouseConfig {
    ClickHouseConfig {
        database: database.to_owned(),
        ..Default::default()
    }
}

/// A fresh, migrated database named after the test.
pub async fn fresh_db(test_path: &str) -> Db {
    let url = server_url().await;
    let db = Db::new(&url, &clickhouse_config(&database_name(test_path)))
        .expect("valid test database name");
    db.drop_database().await.expect("drop test database");
    migrate::migrate(&db).await.expect("migrate test database");
    db
}

/// `test_db!()`: a fresh, migrated [`Db`] named after the calling test.
#[macro_export]
macro_rules! test_db {
    () => {{
        fn f() {}
        fn name_of<T>(_: T) -> &'static str {
            ::std::any::type_name::<T>()
        }
        $crate::testing::fresh_db(name_of(f)).await
    }};
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// For fault tests that send one pulse per machine and second: panics unless
/// every acknowledged (machine name, coded_at) is stored exactly once with
/// its XP and no (machine, second) is stored twice. Returns how many
/// (machine, second) keys are stored in all.
pub async fn assert_exactly_once(
    db: &Db,
    acked: &std::collections::HashMap<(String, u32), u64>,
) -> usize {
    let rows: Vec<(String, u32, u64, u64)> = db
        .client()
        .query(
            "SELECT name, coded_at, count(), sum(xp) FROM pulses \
             ANY INNER JOIN (SELECT machine_id, name FROM machines FINAL) USING machine_id \
             GROUP BY name, coded_at",
        )
        .fetch_all()
        .await
        .expect("read stored pulses");
    let mut stored = std::collections::HashMap::new();
    for (machine, coded_at, count, xp) in rows {
        assert_eq!(count, 1, "{machine} {coded_at} stored {count} times");
        stored.insert((machine, coded_at), xp);
    }
    for (key, xp) in acked {
        assert_eq!(
            stored.get(key),
            Some(xp),
            "acknowledged {key:?} missing or wrong"
        );
    }
    stored.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_test_paths() {
        assert_eq!(
            database_name("ingest::pulses::tests::rejects_bad_json::{{closure}}::f"),
            "t_ingest_pulses_tests_rejects_bad_json"
        );
        assert_eq!(database_name("cli::users_add::f"), "t_cli_users_add");
    }
}
