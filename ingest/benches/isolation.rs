//! What reads do to ingest: `GET /api/users/NAME` against serving a static
//! file of the same size from the same server (the builder's static router,
//! as `codestats serve` mounts it), and the pulse API's latency alone,
//! under that read load, and while analysts run full scans at their limits,
//! all in one run.
//!
//! ```sh
//! cargo bench -p ingest --bench isolation
//! BENCH_SECS=10 BENCH_READERS=64 cargo bench -p ingest --bench isolation
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BENCH_SECS` | 5 | measured seconds of each phase |
//! | `BENCH_READERS` | 64 | keep-alive connections reading |
//! | `BENCH_WRITERS` | 16 | keep-alive connections posting pulses |
//! | `BENCH_READ_RATE` | 5,000 | reads per second of the paced read load |
//! | `BENCH_ANALYSTS` | 3 | analysts each running full scans back to back |
//! | `BENCH_SCAN_ROWS` | 3,000,000 | pulse rows the analysts scan |
//!
//! Phases: static file alone; read API alone; pulses alone; pulses while the
//! read API answers `BENCH_READ_RATE` reads a second (paced); pulses while
//! the read API is under as much load as the readers can make (on 2 cores,
//! that load generator and server take the CPU ClickHouse needs for the
//! INSERTs: it shows contention for the machine, not the read path's
//! cost); pulses while analysts run full-scan aggregations
//! as the read-only analyst user (its per-user limits refuse the queries
//! past `max_concurrent_queries_for_user`; refusals are counted). The documents are a year of dates, 20 languages
//! and 3 machines (~10 KB), one per user, 100 public users; requests go
//! round-robin over them. The database is `t_bench_read_api` on the test
//! suite's ClickHouse (`t_bench_isolation`).

use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, body::Bytes};
use hyper_util::rt::TokioIo;
use ingest::{App, IngestConfig};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

const USERS: usize = 100;

fn var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nBENCHMARK FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn file_of(username: &str) -> PathBuf {
    builder::paths::api_user_file(username)
}

/// A read-API document of the size a year of daily coding makes.
fn document(user: &str) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).expect("date");
    let dates: serde_json::Map<String, serde_json::Value> = (0..365)
        .map(|d| {
            let day = start + chrono::Days::new(d);
            (day.format("%Y-%m-%d").to_string(), (100 + d * 7).into())
        })
        .collect();
    let languages: serde_json::Map<String, serde_json::Value> = (0..20)
        .map(|i| {
            (
                format!("Language {i}"),
                serde_json::json!({"xps": 1000 * i, "new_xps": i}),
            )
        })
        .collect();
    serde_json::json!({
        "user": user, "total_xp": 123_456, "new_xp": 789,
        "machines": {"laptop": {"xps": 1, "new_xps": 0}, "desk": {"xps": 2, "new_xps": 0}, "work": {"xps": 3, "new_xps": 1}},
        "languages": languages,
        "dates": dates,
    })
    .to_string()
}

async fn run() -> Result<(), String> {
    let secs = Duration::from_secs(var("BENCH_SECS", 5).max(1));
    let readers = var("BENCH_READERS", 64).max(1) as usize;
    let writers = var("BENCH_WRITERS", 16).max(1) as usize;
    let db = sql::testing::fresh_db("bench_isolation").await;

    let site = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    let mut size = 0;
    for i in 0..USERS {
        let name = format!("reader{i}");
        sql::accounts::add_user(&db, &name, "", false)
            .await
            .map_err(|e| e.to_string())?;
        let doc = document(&name);
        size = doc.len();
        write(site.path(), &file_of(&name), &doc)?;
        write(site.path(), Path::new(&format!("docs/{name}.json")), &doc)?;
        names.push(name);
    }
    let mut tokens = Vec::new();
    for i in 0..writers {
        let (_, token) = sql::accounts::add_machine(&db, "reader0", &format!("m{i}"))
            .await
            .map_err(|e| e.to_string())?;
        tokens.push(token);
    }

    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = IngestConfig::new(data.path());
    config.rate_per_minute = 100_000_000;
    config.rate_burst = 100_000;
    config.read_api = Some(ingest::api::users::ReadApiFiles {
        dir: site.path().to_owned(),
        file_of,
        coding_file_of: file_of,
    });
    let app = App::start(db.clone(), &config)
        .await
        .map_err(|e| e.to_string())?;
    let router = ingest::router(app.clone()).fallback_service(builder::serve::router(site.path()));
    let server = ingest::server::RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        router,
        ingest::server::ServerLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let addr = server.addr;

    let static_paths: Vec<String> = names.iter().map(|n| format!("/docs/{n}.json")).collect();
    let api_paths: Vec<String> = names.iter().map(|n| format!("/api/users/{n}")).collect();
    let coded_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pulse = Bytes::from(
        serde_json::json!({"coded_at": coded_at, "xps": [{"language": "Rust", "xp": 12}, {"language": "Go", "xp": 5}, {"language": "SQL", "xp": 3}]})
            .to_string(),
    );

    println!(
        "read API vs static file: {size}-byte documents, {USERS} users, {readers} readers, \
         {writers} writers, {} s per phase, {} cores shared by server, clients and ClickHouse",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let static_alone = load(addr, readers, Load::Get(static_paths), secs).await;
    let api_alone = load(addr, readers, Load::Get(api_paths.clone()), secs).await;
    let pulses_alone = load(
        addr,
        writers,
        Load::Post(tokens.clone(), pulse.clone()),
        secs,
    )
    .await;
    let read_rate = var("BENCH_READ_RATE", 5_000).max(1);
    let pace = Duration::from_secs_f64(readers as f64 / read_rate as f64);
    let (pulses_paced, api_paced) = tokio::join!(
        load(
            addr,
            writers,
            Load::Post(tokens.clone(), pulse.clone()),
            secs
        ),
        load(addr, readers, Load::Paced(api_paths.clone(), pace), secs)
    );
    let (pulses_loaded, api_loaded) = tokio::join!(
        load(
            addr,
            writers,
            Load::Post(tokens.clone(), pulse.clone()),
            secs
        ),
        load(addr, readers, Load::Get(api_paths), secs)
    );
    let analysts = var("BENCH_ANALYSTS", 3) as usize;
    seed_scan_rows(&db, var("BENCH_SCAN_ROWS", 3_000_000) as usize).await?;
    let analyst_db = sql::Db::analyst(
        &sql::testing::server_url().await,
        db.database(),
        &sql::testing::analyst_config().await,
    )
    .map_err(|e| e.to_string())?;
    let scans_stop = secs + Duration::from_secs(1);
    let scanners: Vec<_> = (0..analysts)
        .map(|_| tokio::spawn(scan(analyst_db.clone(), scans_stop)))
        .collect();
    let pulses_scanned = load(addr, writers, Load::Post(tokens, pulse), secs).await;
    let (mut scans, mut refused) = (0, 0);
    for s in scanners {
        let (done, no) = s.await.unwrap_or_default();
        scans += done;
        refused += no;
    }
    for (label, r) in [
        ("static file", &static_alone),
        ("read API", &api_alone),
        ("pulses", &pulses_alone),
        ("pulses, paced reads", &pulses_paced),
        ("paced reads beside pulses", &api_paced),
        ("pulses, saturating reads", &pulses_loaded),
        ("saturating reads", &api_loaded),
        ("pulses beside analysts", &pulses_scanned),
    ] {
        println!(
            "  {label:<24} {:>9.0} req/s  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} not 2xx)",
            r.per_sec, r.p50_ms, r.p99_ms, r.failed
        );
    }
    println!(
        "  read API / static file: {:.0}% of the throughput (target >= 50%)",
        100.0 * api_alone.per_sec / static_alone.per_sec.max(1e-9)
    );
    println!(
        "  pulse p99 beside {read_rate} reads/s / alone: {:.2}x (target <= 1.5x)",
        pulses_paced.p99_ms / pulses_alone.p99_ms.max(1e-9)
    );
    println!(
        "  pulse p99 beside saturating reads / alone: {:.2}x",
        pulses_loaded.p99_ms / pulses_alone.p99_ms.max(1e-9)
    );
    println!(
        "  analysts: {analysts} running full scans of the pulses: {scans} finished, {refused} refused by their limits"
    );
    println!(
        "  pulse p99 beside analysts / alone: {:.2}x (target <= 2x)",
        pulses_scanned.p99_ms / pulses_alone.p99_ms.max(1e-9)
    );
    app.shutdown().await;
    server.stop().await;
    if static_alone.failed + api_alone.failed + pulses_alone.failed + pulses_loaded.failed > 0 {
        return Err("some requests were not answered 2xx".into());
    }
    Ok(())
}

/// `n` pulse rows for the analysts to scan, in 100,000-row INSERTs.
async fn seed_scan_rows(db: &sql::Db, n: usize) -> Result<(), String> {
    let now = chrono::Utc::now().timestamp() as u32;
    let mut written = 0;
    while written < n {
        let rows: Vec<sql::pulses::PulseRow> = (written..(written + 100_000).min(n))
            .map(|i| sql::pulses::PulseRow {
                pulse_id: i as u64,
                batch_id: (i / 100_000) as u64,
                user_id: (i % 1000) as u64,
                machine_id: (i % 3000) as u64,
                coded_at: now - (i % 86_400) as u32,
                utc_offset: 0,
                language: format!("Language {}", i % 50),
                xp: (i % 100) as u32,
                received_at: now,
            })
            .collect();
        written += rows.len();
        sql::blocks::insert_unshipped(db, &rows)
            .await
            .map_err(|e| format!("seed: {e}"))?;
    }
    Ok(())
}

/// One analyst running a full-scan aggregation back to back for `secs`;
/// returns the queries finished and those refused.
async fn scan(db: sql::Db, secs: Duration) -> (u64, u64) {
    let stop_at = Instant::now() + secs;
    let (mut done, mut refused) = (0, 0);
    while Instant::now() < stop_at {
        let result = db
            .client()
            .query(
                "SELECT language, count(), sum(xp), uniqExact(pulse_id), uniqExact(user_id, machine_id) \
                 FROM pulses GROUP BY language ORDER BY language",
            )
            .fetch_all::<(String, u64, u64, u64, u64)>()
            .await;
        match result {
            Ok(_) => done += 1,
            Err(_) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (done, refused)
}

fn write(root: &Path, relative: &Path, text: &str) -> Result<(), String> {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| e.to_string())
}

#[derive(Clone)]
enum Load {
    /// GET these paths round-robin.
    Get(Vec<String>),
    /// The same, one request per interval on each connection.
    Paced(Vec<String>, Duration),
    /// POST this pulse, one token per connection.
    Post(Vec<String>, Bytes),
}

struct Outcome {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

/// `connections` keep-alive connections sending back to back for `secs`
/// (after a one-second warm-up that is not counted).
async fn load(addr: SocketAddr, connections: usize, what: Load, secs: Duration) -> Outcome {
    let measure_from = Instant::now() + Duration::from_secs(1);
    let stop_at = measure_from + secs;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let what = what.clone();
            tokio::spawn(async move { client(addr, i, what, measure_from, stop_at).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap_or_default();
        latencies.extend(l);
        failed += f;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    Outcome {
        per_sec: latencies.len() as f64 / secs.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        failed,
    }
}

async fn client(
    addr: SocketAddr,
    index: usize,
    what: Load,
    measure_from: Instant,
    stop_at: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
        return (latencies, 1);
    };
    let _ = tcp.set_nodelay(true);
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await
    else {
        return (latencies, 1);
    };
    tokio::spawn(connection);
    let mut n = index;
    let (pace, what) = match what {
        Load::Paced(paths, every) => (Some(every), Load::Get(paths)),
        other => (None, other),
    };
    // Paced connections start spread over one interval.
    let mut next =
        Instant::now() + pace.map_or(Duration::ZERO, |p| p.mul_f64((index % 97) as f64 / 97.0));
    while Instant::now() < stop_at {
        if let Some(every) = pace {
            tokio::time::sleep_until(next.into()).await;
            next += every;
        }
        let request = match &what {
            Load::Paced(..) => unreachable!("turned into Get above"),
            Load::Get(paths) => {
                n += 1;
                Request::builder()
                    .method(Method::GET)
                    .uri(&paths[n % paths.len()])
                    .header("host", "127.0.0.1")
                    .body(Full::new(Bytes::new()))
            }
            Load::Post(tokens, body) => Request::builder()
                .method(Method::POST)
                .uri("/api/my/pulses")
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("x-api-token", &tokens[index % tokens.len()])
                .body(Full::new(body.clone())),
        }
        .expect("request");
        let sent = Instant::now();
        let ok = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response.into_body().collect().await.is_ok()
                    && (status == StatusCode::OK || status == StatusCode::CREATED)
            }
            Err(_) => return (latencies, failed + 1),
        };
        let done = Instant::now();
        if !ok {
            failed += 1;
        } else if sent >= measure_from && done <= stop_at {
            latencies.push(
                done.duration_since(sent)
                    .as_micros()
                    .min(u128::from(u32::MAX)) as u32,
            );
        }
    }
    (latencies, failed)
}
