//! Test support: a real ClickHouse for the test suite and one fresh database
//! per test, so tests run in parallel without seeing each other's rows.
//!
//! The server is `CODESTATS_TEST_CLICKHOUSE_URL` when set; otherwise the
//! suite's own local server under `target/test-clickhouse` (HTTP port
//! [`TEST_HTTP_PORT`]), started on first use through the same code as the
//! embedded server and left running for the next test binary
//! (`scripts/test` stops it at the end).
//!
//! Every connection authenticates: as the writer and the analyst of the
//! local server's credentials file, or, with `CODESTATS_TEST_CLICKHOUSE_URL`,
//! as `CODESTATS_TEST_CLICKHOUSE_USER` / `CODESTATS_TEST_CLICKHOUSE_PASSWORD`
//! and `CODESTATS_TEST_ANALYST_USER` / `CODESTATS_TEST_ANALYST_PASSWORD`.

use crate::{
    AnalystConfig, ClickHouseConfig, Db,
    local_server::{self, Account, LocalServerConfig},
    migrate,
    secret::Secret,
};
use std::path::PathBuf;
use tokio::sync::OnceCell;

/// HTTP port of the test suite's ClickHouse.
pub const TEST_HTTP_PORT: u16 = 28123;
/// Native port of the test suite's ClickHouse.
pub const TEST_TCP_PORT: u16 = 29000;

/// The test suite's ClickHouse and how to log in to it.
#[derive(Debug, Clone)]
pub struct TestServer {
    pub url: String,
    /// May do anything: what codestats itself connects as.
    pub writer: Account,
    /// The read-only analyst `codestats sql` connects as.
    pub analyst: Account,
}

static SERVER: OnceCell<TestServer> = OnceCell::const_new();

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

/// The running ClickHouse for tests, starting one if needed.
pub async fn server() -> &'static TestServer {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("CODESTATS_TEST_CLICKHOUSE_URL") {
                let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
                let account = |user: &str, password: &str, default_user: &str| Account {
                    user: var(user).unwrap_or_else(|| default_user.to_owned()),
                    password: Secret::new(var(password).unwrap_or_default()),
                };
                return TestServer {
                    url,
                    writer: account(
                        "CODESTATS_TEST_CLICKHOUSE_USER",
                        "CODESTATS_TEST_CLICKHOUSE_PASSWORD",
                        crate::config::DEFAULT_USER,
                    ),
                    analyst: account(
                        "CODESTATS_TEST_ANALYST_USER",
                        "CODESTATS_TEST_ANALYST_PASSWORD",
                        local_server::ANALYST_USER,
                    ),
                };
            }
            let config = test_server_config();
            if let Err(e) = local_server::start_detached(&config).await {
                // Another test binary may have won the race to start it.
                if !local_server::ping(config.http_port).await {
                    panic!("cannot start the test clickhouse: {e}");
                }
            }
            let credentials = config
                .running_credentials()
                .await
                .unwrap_or_else(|e| panic!("cannot log in to the test clickhouse: {e}"));
            TestServer {
                url: config.url(),
                writer: credentials.writer,
                analyst: credentials.analyst,
            }
        })
        .await
}

/// The URL of a running ClickHouse for tests, starting one if needed.
pub async fn server_url() -> String {
    server().await.url.clone()
}

/// The environment a `codestats` process needs to use the test server's
/// `database`: its URL, database and both users' names and passwords.
pub async fn binary_env(database: &str) -> Vec<(&'static str, String)> {
    let server = server().await;
    vec![
        ("CODESTATS_CLICKHOUSE_URL", server.url.clone()),
        ("CODESTATS_CLICKHOUSE_DATABASE", database.to_owned()),
        ("CODESTATS_CLICKHOUSE_USER", server.writer.user.clone()),
        (
            "CODESTATS_CLICKHOUSE_PASSWORD",
            server.writer.password.expose().to_owned(),
        ),
        ("CODESTATS_ANALYST_USER", server.analyst.user.clone()),
        (
            "CODESTATS_ANALYST_PASSWORD",
            server.analyst.password.expose().to_owned(),
        ),
        // Tests run many servers at once: metrics on any free port.
        ("CODESTATS_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
    ]
}

/// How the analyst connects to the test server.
pub async fn analyst_config() -> AnalystConfig {
    let analyst = &server().await.analyst;
    AnalystConfig {
        user: analyst.user.clone(),
        password: analyst.password.clone(),
    }
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

/// How tests connect to the test server's `database`, as the writer.
pub async fn clickhouse_config(database: &str) -> ClickHouseConfig {
    let server = server().await;
    ClickHouseConfig {
        url: Some(server.url.clone()),
        user: server.writer.user.clone(),
        password: server.writer.password.clone(),
        database: database.to_owned(),
        ..Default::default()
    }
}

/// A fresh, migrated database named after the test.
pub async fn fresh_db(test_path: &str) -> Db {
    let url = server_url().await;
    let db = Db::new(&url, &clickhouse_config(&database_name(test_path)).await)
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

/// Asserts that `xp_hourly` holds exactly the aggregates of `pulses` (per
/// user, local hour, machine and language) and one marker per block.
pub async fn assert_xp_consistent(db: &Db) {
    let from_pulses: Vec<(u64, u16, u8, u64, String, u64)> = db
        .client()
        .query(
            "SELECT user_id, toDate(coded_at + utc_offset * 60, 'UTC') AS d, \
             toUInt8(toHour(coded_at + utc_offset * 60, 'UTC')) AS h, machine_id, language, \
             toUInt64(sum(xp)) AS x FROM pulses GROUP BY user_id, d, h, machine_id, language \
             HAVING x > 0 ORDER BY user_id, d, h, machine_id, language",
        )
        .fetch_all()
        .await
        .expect("aggregate pulses");
    let from_xp: Vec<(u64, u16, u8, u64, String, u64)> = db
        .client()
        .query(
            "SELECT user_id, local_date, local_hour, machine_id, language, sum(xp) AS x \
             FROM xp_hourly WHERE user_id != 0 \
             GROUP BY user_id, local_date, local_hour, machine_id, language HAVING x > 0 \
             ORDER BY user_id, local_date, local_hour, machine_id, language",
        )
        .fetch_all()
        .await
        .expect("read xp_hourly");
    assert_eq!(
        from_xp.len(),
        from_pulses.len(),
        "xp_hourly keys differ from pulses'"
    );
    for (x, p) in from_xp.iter().zip(&from_pulses) {
        assert_eq!(x, p, "xp_hourly differs from pulses");
    }
    let (blocks, markers, most): (u64, u64, u64) = db
        .client()
        .query(
            "SELECT (SELECT uniqExact(batch_id) FROM pulses), \
             (SELECT count() FROM xp_hourly WHERE user_id = 0 AND marker > 0), \
             (SELECT max(m) FROM (SELECT sum(marker) AS m FROM xp_hourly \
                                  WHERE user_id = 0 GROUP BY machine_id))",
        )
        .fetch_one()
        .await
        .expect("count blocks and markers");
    assert!(markers <= blocks, "{markers} markers for {blocks} blocks");
    assert!(
        most <= 1,
        "a block's xp_hourly rows were written {most} times"
    );
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
