//! ClickHouse goes away while clients keep sending: every acknowledged pulse
//! ends up in ClickHouse exactly once.

mod common;

use common::{TestApp, eventually};
use reqwest::StatusCode;
use serde_json::json;
use sql::{
    Db,
    local_server::{LocalServer, LocalServerConfig},
};
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// A ClickHouse of this test's own, which it may stop and start.
fn own_server(dir: &std::path::Path) -> LocalServerConfig {
    let mut config = LocalServerConfig::for_data_dir(dir);
    config.http_port = sql::testing::free_port();
    config.tcp_port = sql::testing::free_port();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clickhouse_outage_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server_config = own_server(dir.path());
    let server = LocalServer::start(server_config.clone()).await.unwrap();
    let db = Db::new(
        &server_config.url(),
        &server_config
            .clickhouse_config(sql::config::DEFAULT_DATABASE)
            .unwrap(),
    )
    .unwrap();
    sql::migrate::migrate(&db).await.unwrap();
    let app = TestApp::with_config(db.clone(), |c| {
        c.rate_per_minute = 1_000_000;
        c.replay_delay = Duration::from_secs(1);
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let base = common::now_secs() - 5 * 86400;
    let mut senders = Vec::new();
    for client in 0..4 {
        let token = app.machine("outage", &format!("m{client}"), false).await;
        let (url, stop) = (app.url("/api/my/pulses"), stop.clone());
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = HashMap::new();
            let mut refused = 0;
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let coded_at = chrono::DateTime::from_timestamp(base + n, 0)
                    .unwrap()
                    .to_rfc3339();
                let xp = (n % 50 + 1) as u64;
                let body = json!({"coded_at": coded_at, "xps": [{"language": "Rust", "xp": xp}]});
                let r = http
                    .post(&url)
                    .header("X-API-Token", &token)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                match r.status() {
                    StatusCode::CREATED => {
                        acked.insert((base + n) as u32, xp);
                    }
                    StatusCode::SERVICE_UNAVAILABLE => refused += 1,
                    other => panic!("unexpected {other}"),
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (format!("m{client}"), acked, refused)
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    server.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(health.body["error"].is_string());
    assert!(health.headers.contains_key("retry-after"));
    let spooled_during_outage = app.app.stats.spooled.load(Ordering::Relaxed);
    let server = LocalServer::start(server_config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);

    let mut acked: HashMap<(String, u32), u64> = HashMap::new();
    for sender in senders {
        let (machine, pulses, refused) = sender.await.unwrap();
        assert_eq!(
            refused, 0,
            "the spool took every pulse while clickhouse was down"
        );
        for (coded_at, xp) in pulses {
            acked.insert((machine.clone(), coded_at), xp);
        }
    }
    assert!(spooled_during_outage > 0, "the outage was not noticed");

    let spool_dir = app.data.path().join("spool");
    assert!(
        eventually(Duration::from_secs(30), || async {
            std::fs::read_dir(&spool_dir).unwrap().next().is_none()
        })
        .await,
        "spool not drained"
    );
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored, acked.len(), "unacknowledged pulses stored");
    // Teardown: the app's connections would hold up a graceful stop.
    server.kill().await;
}

/// A batch whose INSERT timed out may still have landed: replaying the spool
/// inserts only the batches ClickHouse does not hold.
#[tokio::test]
async fn replay_skips_batches_that_already_landed() {
    use ingest::spool::{Batch, Spool};
    use sql::pulses::PulseRow;
    let db = sql::test_db!();
    let now = common::now_secs() as u32;
    let batch = |batch_id: u64, received_at: u32, xp: u32| Batch {
        batch_id,
        received_at,
        pulses: (0..3)
            .map(|i| PulseRow {
                pulse_id: batch_id * 10 + i,
                batch_id,
                user_id: 1,
                machine_id: 2,
                coded_at: received_at - 60,
                utc_offset: 0,
                language: "Rust".into(),
                xp,
                received_at,
            })
            .collect(),
        languages: vec![],
    };
    let landed = batch(11, now - 100, 1);
    let lost = batch(12, now - 90, 10);
    let other = batch(13, now - 80, 100);
    sql::pulses::insert(&db, &landed.pulses).await.unwrap();

    let data = tempfile::tempdir().unwrap();
    let spool = Spool::open(data.path().join("spool")).unwrap();
    for b in [&landed, &lost, &other] {
        spool.write(b).unwrap();
    }
    let app = TestApp::with_config(db.clone(), |c| c.spool_dir = data.path().join("spool")).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            spool.pending().unwrap().is_empty()
        })
        .await,
        "spool not replayed"
    );
    // Each batch once: 3 × 1 + 3 × 10 + 3 × 100.
    assert_eq!(app.stored().await, (333, 9));
}
