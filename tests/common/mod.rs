//! What the binary's integration tests share: running `codestats` commands
//! and `codestats serve` against the test ClickHouse, Chromium's flags, and
//! a DevTools client to drive it ([`cdp`]).

#![allow(dead_code)] // each test binary uses part of it

pub mod cdp;

use std::{
    path::Path,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_codestats");
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The flags that run Chromium headless on this kind of machine (no
/// sandbox as root, no background connections on a closed network).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

pub fn assert_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "chromium missing: scripts/install-deps chromium"
    );
}

/// Runs `codestats ARGS` against the test server's `database`.
pub async fn codestats(database: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(sql::testing::binary_env(database).await)
        .output()
        .expect("run codestats")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", stderr(&out));
    stdout(&out)
}

/// Asserts failure with every one of `expected` in the error message.
pub fn fails(out: Output, expected: &[&str]) {
    assert!(!out.status.success(), "succeeded: {}", stdout(&out));
    let err = stderr(&out);
    for part in expected {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
}

/// Every row of every table of `db`'s database, as `table<TAB>row` in TSV,
/// sorted: what the database holds, in a comparable form.
pub async fn table_rows(db: &sql::Db) -> Vec<String> {
    let tables: Vec<String> = db
        .client()
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
        .fetch_all()
        .await
        .expect("list tables");
    let mut lines = Vec::new();
    for table in tables {
        let bytes = db
            .client()
            .query("SELECT * FROM ?")
            .bind(sql::clickhouse::sql::Identifier(&table))
            .fetch_bytes("TSV")
            .expect("dump table")
            .collect()
            .await
            .expect("dump table");
        let mut rows: Vec<String> = String::from_utf8_lossy(&bytes)
            .lines()
            .map(|row| format!("{table}\t{row}"))
            .collect();
        rows.sort();
        lines.extend(rows);
    }
    lines
}

/// `codestats serve` on a free loopback port over the test server's
/// `database`, with its data dir in `data`; killed when dropped.
pub struct Serve {
    child: Child,
    pub base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    pub async fn start(database: &str, data: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with_stderr(database, data, env, Stdio::null()).await
    }

    /// As [`Serve::start`], with the server's log lines sent to `stderr`.
    pub async fn start_with_stderr(
        database: &str,
        data: &Path,
        env: &[(&str, &str)],
        stderr: impl Into<Stdio>,
    ) -> Self {
        let port = sql::testing::free_port();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(sql::testing::binary_env(database).await)
            .env("CODESTATS_DATA_DIR", data)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start codestats serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process id of the running `codestats serve`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `path` answers 200 with a body that `ready` accepts, and
    /// returns that body.
    pub async fn wait_for(&self, path: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(self.url(path)).await
                && r.status() == 200
                && let Ok(body) = r.text().await
                && ready(&body)
            {
                return body;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{path} not ready within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Posts one pulse to the plugin API at `url` and asserts its 201.
pub async fn post(url: &str, token: &str, coded_at: String, xps: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/api/my/pulses"))
        .header("X-API-Token", token)
        .body(serde_json::json!({"coded_at": coded_at, "xps": xps}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}
