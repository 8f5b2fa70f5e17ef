//! Processes sharing one data dir: one `serve` at a time, and builds of the
//! site that take turns (`codestats build` beside `serve`'s schedule).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{BIN, Serve, codestats, ok, stderr};

/// `codestats ARGS` over the test server's `database`, with its data dir
/// in `data`.
async fn command(database: &str, data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .envs(sql::testing::binary_env(database).await)
        .env("CODESTATS_DATA_DIR", data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Waits for `child` to exit, at most `limit`; kills it after that.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn a_second_serve_on_one_data_dir_refuses_to_start() {
    let db = sql::test_db!();
    let data = tempfile::tempdir().unwrap();
    let first = Serve::start(db.database(), data.path(), &[]).await;
    first.wait_for("/healthz", |_| true).await;

    let port = sql::testing::free_port();
    let mut second = command(
        db.database(),
        data.path(),
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
    )
    .await
    .spawn()
    .unwrap();
    let status = wait_at_most(&mut second, Duration::from_secs(30))
        .expect("a second serve on the same data dir kept running");
    let out = second.wait_with_output().unwrap();
    assert!(!status.success());
    let err = stderr(&out);
    assert!(err.contains("another codestats serve"), "{err}");
    assert!(err.contains(&data.path().display().to_string()), "{err}");
    // The first one still serves.
    first.wait_for("/healthz", |_| true).await;
}

/// Every file below `dir`, relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Concurrent `codestats build`s per round, and rounds.
const BUILDS_AT_ONCE: usize = 3;
const ROUNDS: usize = 8;

#[tokio::test]
async fn concurrent_builds_never_publish_a_site_missing_files() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(
        d,
        &["seed", "--users", "30", "--days", "60", "--prefix", "lock"],
    )
    .await);
    let data = tempfile::tempdir().unwrap();
    let site = data.path().join("site");
    let out = command(d, data.path(), &["build", "--full"])
        .await
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = files(&site);
    assert!(expected.len() > 100, "{} files", expected.len());

    // serve rebuilds the same site every second meanwhile.
    let serve = Serve::start(d, data.path(), &[("CODESTATS_ROLLUP_INTERVAL_SECS", "1")]).await;
    serve.wait_for("/healthz", |_| true).await;
    for round in 0..ROUNDS {
        let mut builds = Vec::new();
        for _ in 0..BUILDS_AT_ONCE {
            builds.push(
                command(d, data.path(), &["build", "--full"])
                    .await
                    .spawn()
                    .unwrap(),
            );
        }
        for build in builds {
            let out = build.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: a build failed: {}",
                stderr(&out)
            );
        }
        let present = files(&site);
        let missing: Vec<&PathBuf> = expected.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} files missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
    drop(serve);
}
