//! A ClickHouse that stops answering in the middle of a block's INSERT
//! (SIGSTOP, as a hung server or a long pause): pulses are still
//! acknowledged from the log, the shipper ends the INSERT with `KILL QUERY`
//! past its insert timeout, and when the server resumes every acknowledged
//! pulse is stored exactly once, `xp_hourly` with them.

mod common;

use common::TestApp;
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use reqwest::StatusCode;
use serde_json::json;
use std::{collections::HashMap, sync::atomic::Ordering, time::Duration};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_stalled_past_its_timeout_is_ended_and_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let (config, server, db) = common::own_clickhouse(dir.path()).await;
    let app = TestApp::with_config(db.clone(), |c| {
        c.rate_per_minute = 1_000_000;
        c.insert_timeout = Duration::from_millis(300);
    })
    .await;
    let token = app.machine("stall", "m", false).await;
    let base = common::now_secs() - 3 * 86400;
    let mut acked = HashMap::new();
    let mut post = async |n: i64| {
        let coded_at = chrono::DateTime::from_timestamp(base + n, 0)
            .unwrap()
            .to_rfc3339();
        let xp = (n % 9 + 1) as u64;
        let r = app
            .post(
                &token,
                json!({"coded_at": coded_at, "xps": [{"language": "Rust", "xp": xp}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        acked.insert(("m".to_owned(), (base + n) as u32), xp);
    };
    for n in 0..20 {
        post(n).await;
    }
    app.flush().await;

    let pid = Pid::from_raw(
        std::fs::read_to_string(config.pid_path())
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    kill(pid, Signal::SIGSTOP).unwrap();
    // Acknowledged from the log while the INSERT hangs, past its timeout
    // (and the KILL sent then hangs too).
    for n in 20..70 {
        post(n).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats = &app.app.shipper.stats;
    let slow = stats.slow_inserts.load(Ordering::Relaxed);
    let shipped_while_stopped = stats.rows.load(Ordering::Relaxed);
    kill(pid, Signal::SIGCONT).unwrap();
    assert!(slow >= 1, "no INSERT outlived its timeout");

    app.flush().await;
    assert_eq!(shipped_while_stopped, 20, "a block landed while stopped");
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored, acked.len());
    sql::testing::assert_xp_consistent(&db).await;
    server.kill().await;
}
