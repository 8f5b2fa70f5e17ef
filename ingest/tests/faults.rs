//! Faults on the write path: ClickHouse goes away, the log fills, a block is
//! cut between its two INSERTs, the process stops with a block in doubt, a
//! spool of an older version waits. Every acknowledged pulse ends up in
//! ClickHouse exactly once, nothing refused is stored, and `xp_hourly`
//! sums exactly what `pulses` holds.

mod common;

use common::{TestApp, eventually, own_clickhouse};
use ingest::{
    log::{Position, reader::Cursor, segment},
    ship::state::{Intent, State},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sql::{Db, local_server::LocalServer, pulses::PulseRow};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

/// A pulse: its machine's name and its `coded_at`, unique per machine.
type Key = (String, u32);

/// The body of a pulse of `xp` in Rust coded at `coded_at` (Unix seconds).
fn pulse(coded_at: i64, xp: u64) -> Value {
    let coded_at = chrono::DateTime::from_timestamp(coded_at, 0)
        .unwrap()
        .to_rfc3339();
    json!({"coded_at": coded_at, "xps": [{"language": "Rust", "xp": xp}]})
}

/// Posts `count` pulses one after another from machine `machine` of user
/// `user`, one second apart from `base`; every one must be acknowledged.
async fn post_pulses(
    app: &TestApp,
    user: &str,
    machine: &str,
    base: i64,
    count: i64,
) -> HashMap<Key, u64> {
    let token = app.machine(user, machine, false).await;
    let mut acked = HashMap::new();
    for n in 0..count {
        let xp = (n % 7 + 1) as u64;
        let r = app.post(&token, pulse(base + n, xp)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        acked.insert((machine.to_owned(), (base + n) as u32), xp);
    }
    acked
}

/// Stops the HTTP server, then the app (its log is closed, its shipper
/// stops where it is). Returns the data dir, which holds the log.
async fn stop_app(app: TestApp) -> tempfile::TempDir {
    app.server.stop().await;
    app.app.shutdown().await;
    app.data
}

async fn count_pulses(db: &Db) -> u64 {
    db.client()
        .query("SELECT count() FROM pulses")
        .fetch_one()
        .await
        .unwrap()
}

/// The ids and `received_at`s of the blocks `pulses` holds.
async fn stored_blocks(db: &Db) -> Vec<(u64, u32)> {
    db.client()
        .query("SELECT DISTINCT batch_id, toUInt32(received_at) FROM pulses ORDER BY batch_id")
        .fetch_all()
        .await
        .unwrap()
}

/// Clients, each a machine of its own, posting one pulse after another until
/// stopped; a 503 must carry `Retry-After` and a JSON error.
struct Senders {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<(String, HashMap<u32, u64>)>>,
}

impl Senders {
    async fn start(app: &TestApp, user: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let base = common::now_secs() - 5 * 86400;
        let mut tasks = Vec::new();
        for client in 0..clients {
            let machine = format!("m{client}");
            let token = app.machine(user, &machine, false).await;
            let url = app.url("/api/my/pulses");
            let (stop, acked_count, refused) = (stop.clone(), acked.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut acked = HashMap::new();
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let xp = (n % 50 + 1) as u64;
                    let r = http
                        .post(&url)
                        .header("X-API-Token", &token)
                        .body(pulse(base + n, xp).to_string())
                        .send()
                        .await
                        .unwrap();
                    match r.status() {
                        StatusCode::CREATED => {
                            acked.insert((base + n) as u32, xp);
                            acked_count.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        StatusCode::SERVICE_UNAVAILABLE => {
                            assert!(r.headers().contains_key("retry-after"));
                            let body: Value = r.json().await.unwrap();
                            assert!(body["error"].is_string(), "{body}");
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("unexpected {other}"),
                    }
                    n += 1;
                }
                (machine, acked)
            }));
        }
        Self {
            stop,
            acked,
            refused,
            tasks,
        }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops the clients; every acknowledged pulse and its XP.
    async fn finish(self) -> HashMap<Key, u64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut acked = HashMap::new();
        for task in self.tasks {
            let (machine, pulses) = task.await.unwrap();
            for (coded_at, xp) in pulses {
                acked.insert((machine.clone(), coded_at), xp);
            }
        }
        acked
    }
}

/// ClickHouse is killed while clients keep sending: the log takes every
/// pulse meanwhile (201, none refused), `/healthz` says the node is
/// degraded but up, and once ClickHouse is back every acknowledged pulse is
/// stored exactly once, nothing else is, and `xp_hourly` matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clickhouse_outage_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server_config, server, db) = own_clickhouse(dir.path()).await;
    let app = TestApp::with_config(db.clone(), |c| c.rate_per_minute = 1_000_000).await;
    let senders = Senders::start(&app, "outage", 4).await;

    tokio::time::sleep(Duration::from_millis(800)).await;
    server.kill().await;
    let acked_before_outage = senders.acked();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    assert_eq!(health.body["status"], "degraded");
    assert!(health.body["clickhouse"].is_null(), "{:?}", health.body);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let acked_during_outage = senders.acked() - acked_before_outage;
    let server = LocalServer::start(server_config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let refused = senders.refused();
    let acked = senders.finish().await;

    assert_eq!(
        refused, 0,
        "the log took every pulse while clickhouse was down"
    );
    assert!(
        acked_during_outage > 0,
        "no pulse acknowledged during the outage"
    );
    app.flush().await;
    assert!(
        app.app.shipper.stats.failures.load(Ordering::Relaxed) > 0,
        "the outage was not noticed"
    );
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored, acked.len(), "unacknowledged pulses stored");
    sql::testing::assert_xp_consistent(&db).await;
    // Teardown: the app's connections would hold up a graceful stop.
    server.kill().await;
}

/// With ClickHouse down the log fills up to its cap: pulses are refused
/// with 503, `Retry-After` and a JSON error, and `/healthz` is 503. Once
/// ClickHouse is back the log drains and pulses are taken again; exactly
/// the acknowledged ones are stored, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_log_refuses_with_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server_config, server, db) = own_clickhouse(dir.path()).await;
    // Segments of 64 KiB, four of them at most.
    let app = TestApp::with_config(db.clone(), |c| {
        c.rate_per_minute = 1_000_000;
        c.log_max_bytes = 256 * 1024;
    })
    .await;
    let log_max_bytes = app.app.log.max_bytes();
    // The machines are created while ClickHouse is up.
    let senders = Senders::start(&app, "full", 4).await;
    server.kill().await;

    assert!(
        eventually(Duration::from_secs(60), || async { senders.refused() > 0 }).await,
        "the log never filled"
    );
    let health = app.get("/healthz").await;
    assert_eq!(
        health.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a full log ({} of {log_max_bytes} bytes): {:?}",
        app.app.log.disk_bytes(),
        health.body
    );
    assert!(health.body["error"].is_string(), "{:?}", health.body);
    assert!(health.headers.contains_key("retry-after"));

    let acked_while_full = senders.acked();
    let server = LocalServer::start(server_config.clone()).await.unwrap();
    // Far more than one record could fill of what was left under the cap.
    assert!(
        eventually(Duration::from_secs(60), || async {
            senders.acked() > acked_while_full + 200
        })
        .await,
        "pulses still refused after clickhouse came back"
    );
    let refused = senders.refused();
    let acked = senders.finish().await;
    assert!(refused > 0);
    app.flush().await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert!(app.app.log.disk_bytes() < log_max_bytes);
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored, acked.len(), "refused pulses stored");
    sql::testing::assert_xp_consistent(&db).await;
    server.kill().await;
}

/// Posts pulses from two machines while `xp_hourly` is detached, so that a
/// block's pulses INSERT lands and its `xp_hourly` INSERT fails, and waits
/// until ClickHouse holds those pulses. Returns the acknowledged pulses and
/// the flush under way, which cannot finish before `xp_hourly` is back.
async fn land_pulses_without_xp(app: &TestApp) -> (HashMap<Key, u64>, tokio::task::JoinHandle<()>) {
    // Blocks go out only when flushed (below).
    shipped_all(app).await;
    let base = common::now_secs() - 2 * 86400;
    let a = app.machine("between", "a", false).await;
    let b = app.machine("between", "b", false).await;
    app.db
        .client()
        .query("DETACH TABLE xp_hourly")
        .execute()
        .await
        .unwrap();
    let mut acked = HashMap::new();
    for (machine, token) in [("a", &a), ("b", &b)] {
        for n in 0..10 {
            // Two hours, so the block has several xp_hourly rows per machine.
            let coded_at = base + n * 720;
            let xp = (n + 1) as u64;
            let r = app.post(token, pulse(coded_at, xp)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            acked.insert((machine.to_owned(), coded_at as u32), xp);
        }
    }
    let flushing = tokio::spawn({
        let app = app.app.clone();
        async move { app.flush().await }
    });
    // The flush may find the last records not yet seen by the shipper and
    // send them in a later block: the first one is what matters here.
    assert!(
        eventually(Duration::from_secs(30), || async {
            count_pulses(&app.db).await > 0
        })
        .await,
        "the block's pulses never landed"
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            app.app.shipper.stats.failures.load(Ordering::Relaxed) > 0
        })
        .await,
        "the xp_hourly INSERT did not fail"
    );
    assert_eq!(stored_blocks(&app.db).await.len(), 1);
    assert!(
        !flushing.is_finished(),
        "a block was shipped without its xp_hourly rows"
    );
    (acked, flushing)
}

async fn attach_xp_hourly(db: &Db) {
    db.client()
        .query("ATTACH TABLE xp_hourly")
        .execute()
        .await
        .unwrap();
}

/// Waits until the shipper has written everything logged, without a
/// flush: a flush may leave a wake-up behind, which would send the next
/// pulse in a block of its own.
async fn shipped_all(app: &TestApp) {
    assert!(
        eventually(Duration::from_secs(30), || async {
            app.app.shipper.shipped() >= *app.app.log.durable().borrow()
        })
        .await,
        "the shipper did not catch up with the log"
    );
}

/// A fresh database for a test that detaches `xp_hourly`, whose name
/// `test` is (`type_name_of_val` of a function in it, as `sql::test_db!`
/// does). A run that failed while the table was detached left it so, and
/// ClickHouse cannot drop a database that holds a detached table.
async fn fresh_db_detaching(test: &str) -> Db {
    let name = sql::testing::database_name(test);
    let db = Db::new(
        &sql::testing::server_url().await,
        &sql::testing::clickhouse_config(&name).await,
    )
    .unwrap();
    // Fails when there is no such database or the table is attached.
    let _ = db.client().query("ATTACH TABLE xp_hourly").execute().await;
    sql::testing::fresh_db(test).await
}

/// Blocks go out only when flushed.
fn slow_blocks(c: &mut ingest::IngestConfig) {
    c.block_max_age = Duration::from_secs(600);
}

/// A fault between a block's two INSERTs (its pulses landed, its
/// `xp_hourly` rows did not): the shipper retries until `xp_hourly` takes
/// them, and `xp_hourly` ends up holding the pulses' sums exactly, neither
/// short nor counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xp_hourly_converges_after_a_fault_between_pulses_and_xp() {
    fn f() {}
    let db = fresh_db_detaching(std::any::type_name_of_val(&f)).await;
    let app = TestApp::with_config(db.clone(), slow_blocks).await;
    let (acked, flushing) = land_pulses_without_xp(&app).await;
    attach_xp_hourly(&db).await;
    tokio::time::timeout(Duration::from_secs(60), flushing)
        .await
        .expect("the block was shipped once xp_hourly was back")
        .unwrap();
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored, acked.len());
    sql::testing::assert_xp_consistent(&db).await;
}

/// The same fault, and the process stops before `xp_hourly` is back: the
/// next process, on the same log, finds the block in doubt in
/// `shipper.json`, sees its pulses landed and writes only its `xp_hourly`
/// rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xp_hourly_converges_when_the_process_stops_between_pulses_and_xp() {
    fn f() {}
    let db = fresh_db_detaching(std::any::type_name_of_val(&f)).await;
    let app = TestApp::with_config(db.clone(), slow_blocks).await;
    let (acked, flushing) = land_pulses_without_xp(&app).await;
    let log_dir = app.data.path().join("log");
    flushing.abort();
    let data = stop_app(app).await;
    let intent = State::load(&log_dir)
        .unwrap()
        .intent
        .expect("the block in doubt is in shipper.json");
    assert_eq!(
        stored_blocks(&db).await,
        vec![(intent.block_id, intent.received_at)]
    );

    let app = TestApp::with_config(db.clone(), |c| {
        slow_blocks(c);
        c.log_dir = log_dir.clone();
    })
    .await;
    attach_xp_hourly(&db).await;
    app.flush().await;
    assert!(app.app.shipper.stats.found_landed.load(Ordering::Relaxed) >= 1);
    assert_eq!(State::load(&log_dir).unwrap().intent, None);
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored, acked.len());
    sql::testing::assert_xp_consistent(&db).await;
    drop(data);
}

/// Batches an older version left in its spool are moved into the log and
/// written once each, including one whose INSERT had landed after all; the
/// spool is gone afterwards.
#[tokio::test]
async fn legacy_spool_batches_are_imported_once() {
    let db = sql::test_db!();
    let now = common::now_secs() as u32;
    let batch = |batch_id: u64, received_at: u32, xp: u32| {
        let pulses: Vec<PulseRow> = (0..3)
            .map(|i| PulseRow {
                pulse_id: batch_id * 10 + i,
                batch_id,
                user_id: 1,
                machine_id: 2,
                coded_at: received_at - 60 - i as u32,
                utc_offset: 0,
                language: "Rust".into(),
                xp,
                received_at,
            })
            .collect();
        (batch_id, received_at, pulses)
    };
    let landed = batch(11, now - 100, 1);
    let lost = batch(12, now - 90, 10);
    let other = batch(13, now - 80, 100);
    // The landed batch went through the materialized view of those
    // versions: its xp_hourly rows are there too.
    sql::blocks::insert_unshipped(&db, &landed.2).await.unwrap();

    let data = tempfile::tempdir().unwrap();
    let spool = data.path().join("spool");
    let write_spool = || {
        std::fs::create_dir_all(&spool).unwrap();
        for (batch_id, received_at, pulses) in [&landed, &lost, &other] {
            let file = spool.join(format!("batch-{received_at:010}-{batch_id:016x}.json"));
            let body = json!({
                "batch_id": batch_id,
                "received_at": received_at,
                "pulses": pulses,
                "languages": [],
            });
            std::fs::write(file, body.to_string()).unwrap();
        }
    };
    write_spool();
    let app = TestApp::with_config(db.clone(), |c| c.legacy_spool_dir = spool.clone()).await;
    // Each batch once: 3 × 1 + 3 × 10 + 3 × 100.
    assert_eq!(app.stored().await, (333, 9));
    sql::testing::assert_xp_consistent(&db).await;
    assert!(
        std::fs::read_dir(&spool).map_or(true, |mut d| d.next().is_none()),
        "spool files left"
    );

    // The files back, as if the process had stopped after shipping them
    // but before deleting them: shipped again, nothing is written twice.
    stop_app(app).await;
    write_spool();
    let again = TestApp::with_config(db.clone(), |c| c.legacy_spool_dir = spool.clone()).await;
    assert_eq!(again.stored().await, (333, 9));
    sql::testing::assert_xp_consistent(&db).await;
}

/// The log position after each record from `from` up to `until`.
fn record_ends(log_dir: &Path, from: Position, until: Position) -> Vec<Position> {
    let mut cursor = Cursor::new(log_dir, from);
    let mut ends = Vec::new();
    while let Some((_, end)) = cursor.next(until).unwrap() {
        ends.push(end);
    }
    ends
}

/// The process stops right after a block's INSERTs landed, before
/// `shipper.json` recorded it: the next process finds the block in
/// ClickHouse and does not write it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_in_doubt_after_a_crash_is_not_written_twice() {
    let db = sql::test_db!();
    let app = TestApp::with_config(db.clone(), slow_blocks).await;
    let log_dir: PathBuf = app.data.path().join("log");
    shipped_all(&app).await;
    let before = State::load(&log_dir).unwrap();
    assert_eq!(before.intent, None);
    let base = common::now_secs() - 3 * 86400;
    let mut acked = post_pulses(&app, "crash", "a", base, 10).await;
    acked.extend(post_pulses(&app, "crash", "b", base + 100, 10).await);
    // Mostly one block; two when the flush comes before the shipper saw
    // the last records.
    app.flush().await;
    let after = State::load(&log_dir).unwrap();
    assert_eq!(after.intent, None);
    let stored = stored_blocks(&db).await;
    let data = stop_app(app).await;

    // The last block: the last pulse posted is in it, and its records are
    // the last ones of the log (one record per pulse, posted in order).
    let (block_id, received_at, rows): (u64, u32, u64) = db
        .client()
        .query(
            "SELECT batch_id, toUInt32(received_at), count() FROM pulses \
             WHERE batch_id IN (SELECT batch_id FROM pulses WHERE coded_at = toDateTime(?)) \
             GROUP BY batch_id, received_at",
        )
        .bind((base + 109) as u32)
        .fetch_one()
        .await
        .unwrap();
    let ends = record_ends(&log_dir, before.shipped, after.shipped);
    assert_eq!(ends.len(), acked.len());
    let first = ends.len() - rows as usize;
    let from = match first {
        0 => before.shipped,
        n => ends[n - 1],
    };
    // The state as it was saved before the block's INSERTs started.
    State {
        shipped: from,
        intent: Some(Intent {
            block_id,
            received_at,
            from,
            to: after.shipped,
        }),
    }
    .save(&log_dir)
    .unwrap();
    // Its records are still in the log.
    assert!(segment::path(&log_dir, from.segment).exists());

    let app = TestApp::with_config(db.clone(), |c| c.log_dir = log_dir.clone()).await;
    app.flush().await;
    assert!(app.app.shipper.stats.found_landed.load(Ordering::Relaxed) >= 1);
    assert_eq!(State::load(&log_dir).unwrap(), after);
    let stored_once = sql::testing::assert_exactly_once(&db, &acked).await;
    assert_eq!(stored_once, acked.len());
    assert_eq!(stored_blocks(&db).await, stored);
    sql::testing::assert_xp_consistent(&db).await;
    drop(data);
}
