//! `codestats doctor` on a healthy installation (a running `serve` over the
//! test ClickHouse) and on broken ones: ClickHouse down, a secret file or
//! the log readable by others, stale rollups, a bad setting. Each broken one
//! fails the command and says what to fix.

mod common;

use common::{BIN, Serve, codestats, ok, stdout};
use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

async fn doctor(database: &str, data: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("doctor")
        .envs(sql::testing::binary_env(database).await)
        .env("CODESTATS_DATA_DIR", data)
        .envs(env.iter().copied())
        .output()
        .expect("run codestats doctor")
}

/// The line of check `name` (its status word first), and its fix if any.
fn line<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        if l.split_whitespace().nth(1) == Some(name) {
            found.push(l);
            if let Some(fix) = lines.next_if(|next| next.trim_start().starts_with("fix:")) {
                found.push(fix);
            }
        }
    }
    found
}

fn assert_fails(out: &Output, check: &str, words: &[&str]) {
    let text = stdout(out);
    assert!(!out.status.success(), "doctor succeeded:\n{text}");
    let lines = line(&text, check).join("\n");
    assert!(lines.contains("FAIL"), "{check} did not fail:\n{text}");
    for word in words {
        assert!(
            lines.contains(word),
            "{word:?} not in {check}'s lines:\n{text}"
        );
    }
    let err = common::stderr(out);
    assert!(err.contains("problem"), "{err}");
}

#[tokio::test]
async fn a_healthy_installation_passes_and_each_broken_part_is_named() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "otto"]).await);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(d, data.path(), &[]).await;
    serve.wait_for("/healthz", |_| true).await;
    // The first (full) rollup notes itself.
    let status = data.path().join(jobs::status::STATUS_FILE);
    let started = Instant::now();
    while !status.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rollup noted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = doctor(d, data.path(), &[]).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", common::stderr(&out));
    for check in [
        "config",
        "serve",
        "clickhouse",
        "schema",
        "disk",
        "permissions",
        "log",
        "rollups",
    ] {
        let lines = line(&text, check);
        assert!(
            lines.first().is_some_and(|l| l.starts_with("ok")),
            "{check} not ok:\n{text}"
        );
    }
    assert!(
        text.contains("version 18.") || text.contains("version 2"),
        "{text}"
    );

    // ClickHouse down (a configured URL nobody answers at).
    let dead = format!("http://127.0.0.1:{}", sql::testing::free_port());
    let out = doctor(d, data.path(), &[("CODESTATS_CLICKHOUSE_URL", &dead)]).await;
    assert_fails(
        &out,
        "clickhouse",
        &["does not answer", "fix: start ClickHouse"],
    );

    // The log (every user's pulses) and a secret file readable by others.
    let log = data.path().join("log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o755)).unwrap();
    let secrets = data.path().join("clickhouse");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    let credentials = secrets.join("credentials");
    std::fs::write(&credentials, "writer = x\n").unwrap();
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = doctor(d, data.path(), &[]).await;
    let chmod_log = format!("chmod 700 {}", log.display());
    let chmod_credentials = format!("chmod 600 {}", credentials.display());
    assert_fails(&out, "permissions", &[&chmod_log, &chmod_credentials]);
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_dir_all(&secrets).unwrap();

    // Stale rollups: the last one two days ago.
    drop(serve);
    let mut noted = jobs::status::Status::load(&status).unwrap().unwrap();
    let two_days_ago = chrono::Utc::now().timestamp() - 2 * 86_400;
    for run in [noted.full.as_mut(), noted.incremental.as_mut()]
        .into_iter()
        .flatten()
    {
        run.finished_at = two_days_ago;
    }
    noted.save(&status).unwrap();
    let out = doctor(d, data.path(), &[]).await;
    assert_fails(&out, "rollups", &["2 d ago", "fix:"]);
    // Serve is not running: said, but not a failure by itself.
    assert!(line(&stdout(&out), "serve")[0].starts_with("warn"));
    std::fs::remove_file(&status).unwrap();
    let out = doctor(d, data.path(), &[]).await;
    assert_fails(&out, "rollups", &["no rollup has finished"]);

    // A setting that is not a number.
    let out = doctor(d, data.path(), &[("CODESTATS_RATE_BURST", "lots")]).await;
    assert_fails(&out, "config", &["CODESTATS_RATE_BURST"]);
}
