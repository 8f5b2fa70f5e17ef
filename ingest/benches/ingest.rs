//! The ingest benchmark: keep-alive clients post Code::Stats pulses (3 XP
//! items each, over 100 tokens) to the real router on loopback, and the
//! same load generator posts the same bodies to the HTTP floor — a no-op
//! endpoint on the same server that parses the same JSON and answers 201 —
//! in the same run, for each number of connections.
//!
//! ```sh
//! cargo bench -p ingest --bench ingest                  # 64, 256, 1024 connections; 60 s sustained
//! cargo bench -p ingest --bench ingest -- --long        # sustained for 10 minutes
//! BENCH_CONNECTIONS=256 BENCH_SUSTAINED_SECS=0 cargo bench -p ingest --bench ingest
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BENCH_CONNECTIONS` | `64,256,1024` | connection counts of the comparison |
//! | `BENCH_SECS` | 10 | measured seconds per phase |
//! | `BENCH_WARMUP_SECS` | 3 | seconds of load before measuring, per phase |
//! | `BENCH_SUSTAINED_SECS` | 60 (600 with `--long`) | the sustained run; 0 skips it |
//! | `BENCH_SUSTAINED_CONNECTIONS` | 256 | connections of the sustained run |
//!
//! The database is `t_bench_ingest` on the test suite's ClickHouse
//! (`sql::testing`), recreated at each run. The per-token rate limit is
//! raised (a real plugin sends one pulse per ~10 s; here every connection
//! sends as fast as it is answered), so the limiter is on the path but never
//! refuses. Server, load generator and ClickHouse share the machine's cores.
//!
//! Last, the cost of metrics at `METRICS_CONNECTIONS` connections: the
//! router with `serve`'s per-route middleware under the same load, with the
//! Prometheus recorder `serve` installs switched off and on in turn
//! (`METRICS_PHASES` phases; `BENCH_METRICS=0` skips it).
//!
//! Exits non-zero when the stored rows are not exactly 3 × the pulses
//! acknowledged with 201, or the server counted other than the clients.

#[path = "common/load.rs"]
mod load;

use hyper::body::Bytes;
use ingest::{App, AppState, IngestConfig, server::RunningServer};
use load::{
    CpuUse, Load, TOKENS, XPS, client, drive, floor_router, machines, ms, percentile, pulse_body,
};
use sql::Db;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::ExitCode,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The targets of the issue, shown beside the results.
const TARGET_RATIO_AT_256: f64 = 0.60;
const TARGET_P99_AT_256_MS: f64 = 20.0;

struct Settings {
    connections: Vec<usize>,
    measured: Duration,
    warmup: Duration,
    sustained: Duration,
    sustained_connections: usize,
}

impl Settings {
    fn from_env() -> Self {
        let var = load::env_number;
        let long = std::env::args().any(|a| a == "--long");
        let connections = std::env::var("BENCH_CONNECTIONS")
            .unwrap_or_else(|_| "64,256,1024".into())
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<usize>()
                    .unwrap_or_else(|_| panic!("BENCH_CONNECTIONS: {n:?} is not a number"))
                    .max(1)
            })
            .collect();
        Self {
            connections,
            measured: Duration::from_secs(var("BENCH_SECS", 10).max(1)),
            warmup: Duration::from_secs(var("BENCH_WARMUP_SECS", 3)),
            sustained: Duration::from_secs(var(
                "BENCH_SUSTAINED_SECS",
                if long { 600 } else { 60 },
            )),
            sustained_connections: var("BENCH_SUSTAINED_CONNECTIONS", 256).max(1) as usize,
        }
    }
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    load::run_main(run(&settings))
}

async fn run(settings: &Settings) -> Result<(), String> {
    let db = sql::testing::fresh_db("bench_ingest").await;
    let version = db.version().await.map_err(|e| e.to_string())?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let tokens = machines(&db, TOKENS).await;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = IngestConfig::new(data.path());
    config.rate_per_minute = 100_000_000;
    config.rate_burst = 100_000;
    let app = App::start(db.clone(), &config)
        .await
        .map_err(|e| e.to_string())?;
    // The server `codestats serve` runs, with its limits; the floor on the
    // same server code.
    let server = RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        ingest::router(app.clone()),
        ingest::server::ServerLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let floor = RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        floor_router(),
        ingest::server::ServerLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let body = Bytes::from(pulse_body());

    println!();
    println!(
        "ingest: {} xps per pulse over {TOKENS} tokens, {} s measured after {} s warm-up per phase, \
         ClickHouse {version}, {} cores shared by server, clients and ClickHouse; load average before: {}",
        XPS.len(),
        settings.measured.as_secs(),
        settings.warmup.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    println!(
        "  {:>11} | {:>14} | {:>15} | {:>17} | {:>15} | {:>6} | {:>16} | other answers",
        "connections",
        "floor req/s",
        "floor p50 / p99",
        "codestats pulses/s",
        "p50 / p99",
        "ratio",
        "CPU codestats",
    );
    let mut acked_total = 0;
    for &connections in &settings.connections {
        let floor_load = drive(
            &[floor.addr],
            &tokens,
            &body,
            connections,
            settings.warmup,
            settings.measured,
        )
        .await?;
        let ours = drive(
            &[server.addr],
            &tokens,
            &body,
            connections,
            settings.warmup,
            settings.measured,
        )
        .await?;
        acked_total += ours.acked;
        let (fl, ol) = (floor_load.latencies(), ours.latencies());
        let (fr, or) = (
            floor_load.per_sec(settings.measured),
            ours.per_sec(settings.measured),
        );
        println!(
            "  {:>11} | {:>14.0} | {:>6} / {:>6} ms | {:>18.0} | {:>5} / {:>5} ms | {:>5.0}% | {:>3.0}% busy, {:.2} cores | {}",
            connections,
            fr,
            ms(percentile(&fl, 0.50)),
            ms(percentile(&fl, 0.99)),
            or,
            ms(percentile(&ol, 0.50)),
            ms(percentile(&ol, 0.99)),
            100.0 * or / fr.max(1.0),
            ours.cpu.machine_busy * 100.0,
            ours.cpu.process_cores,
            ours.other_answers(),
        );
        if connections == 256 {
            let ratio = or / fr.max(1.0);
            let p99 = f64::from(percentile(&ol, 0.99)) / 1000.0;
            println!(
                "  {:>11}   target at 256: ≥ {:.0}% of the floor with p99 < {TARGET_P99_AT_256_MS} ms: {}",
                "",
                TARGET_RATIO_AT_256 * 100.0,
                if ratio >= TARGET_RATIO_AT_256 && p99 < TARGET_P99_AT_256_MS {
                    "met"
                } else {
                    "not met"
                }
            );
        }
        check_stored(&db, &app, acked_total).await?;
    }

    if !settings.sustained.is_zero() {
        let ours = sustained(&db, &app, server.addr, &tokens, &body, settings).await?;
        acked_total += ours;
        check_stored(&db, &app, acked_total).await?;
    }

    if std::env::var("BENCH_METRICS").as_deref() != Ok("0") {
        acked_total += metrics_cost(&app, &tokens, &body, settings).await?;
        check_stored(&db, &app, acked_total).await?;
    }

    let stats = &app.shipper.stats;
    let (blocks, rows) = (
        stats.blocks.load(Ordering::Relaxed),
        stats.rows.load(Ordering::Relaxed),
    );
    println!(
        "  shipper: {blocks} blocks, {:.0} rows per INSERT on average; {} INSERT failures",
        rows as f64 / blocks.max(1) as f64,
        stats.failures.load(Ordering::Relaxed),
    );
    println!(
        "  stored rows: 3 × {acked_total} acknowledged pulses, exactly (checked after each phase)"
    );
    app.shutdown().await;
    drop((server, floor, data));
    Ok(())
}

/// Connections of the metrics comparison.
const METRICS_CONNECTIONS: usize = 256;
/// Phases of the comparison, alternately without and with metrics, so
/// ClickHouse's growing background work weighs on both alike.
const METRICS_PHASES: usize = 4;

/// The Prometheus recorder `serve` installs, behind a switch: off, every
/// metric is a no-op handle, as with no recorder at all.
struct Switched {
    inner: metrics_exporter_prometheus::PrometheusRecorder,
    on: std::sync::atomic::AtomicBool,
}

impl metrics::Recorder for Switched {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(
        &self,
        key: &metrics::Key,
        meta: &metrics::Metadata<'_>,
    ) -> metrics::Counter {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_counter(key, meta)
        } else {
            metrics::Counter::noop()
        }
    }

    fn register_gauge(&self, key: &metrics::Key, meta: &metrics::Metadata<'_>) -> metrics::Gauge {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_gauge(key, meta)
        } else {
            metrics::Gauge::noop()
        }
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        meta: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        if self.on.load(Ordering::Relaxed) {
            self.inner.register_histogram(key, meta)
        } else {
            metrics::Histogram::noop()
        }
    }
}

/// Pulses per second without and with the metrics `serve` records (its
/// recorder, histograms compacted as `serve` does, and the route
/// middleware on the router), alternately; the pulses acknowledged.
async fn metrics_cost(
    app: &AppState,
    tokens: &[String],
    body: &Bytes,
    settings: &Settings,
) -> Result<u64, String> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let switch: &'static Switched = Box::leak(Box::new(Switched {
        inner: recorder,
        on: std::sync::atomic::AtomicBool::new(false),
    }));
    metrics::set_global_recorder(switch).map_err(|e| e.to_string())?;
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    });
    let server = RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        ingest::router(app.clone())
            .route_layer(axum::middleware::from_fn(ingest::metrics::track_route)),
        ingest::server::ServerLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let (mut rates, mut acked) = ([Vec::new(), Vec::new()], 0);
    for phase in 0..METRICS_PHASES {
        let on = phase % 2 == 1;
        switch.on.store(on, Ordering::Relaxed);
        let load = drive(
            &[server.addr],
            tokens,
            body,
            METRICS_CONNECTIONS,
            settings.warmup,
            settings.measured,
        )
        .await?;
        acked += load.acked;
        rates[usize::from(on)].push(load.per_sec(settings.measured));
    }
    upkeep.abort();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (without, with) = (mean(&rates[0]), mean(&rates[1]));
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  metrics at {METRICS_CONNECTIONS} connections, alternating: without {} pulses/s, with {} pulses/s: {:.0}% of the rate without",
        list(&rates[0]),
        list(&rates[1]),
        100.0 * with / without.max(1.0),
    );
    Ok(acked)
}

/// The sustained run: codestats alone for `settings.sustained`, reported
/// per interval (a minute, or 10 s for runs under 3 minutes). Returns the
/// pulses acknowledged.
async fn sustained(
    db: &Db,
    app: &AppState,
    addr: SocketAddr,
    tokens: &[String],
    body: &Bytes,
    settings: &Settings,
) -> Result<u64, String> {
    let total = settings.sustained;
    let interval = if total >= Duration::from_secs(180) {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    println!(
        "sustained: {} connections for {} s, per {} s:",
        settings.sustained_connections,
        total.as_secs(),
        interval.as_secs()
    );
    println!(
        "  {:>6} | {:>10} | {:>15} | {:>12} | {:>14} | {:>13}",
        "t (s)", "pulses/s", "p50 / p99", "active parts", "log on disk", "rows shipped"
    );
    let started = Instant::now();
    let stop_at = started + total;
    let clients: Vec<_> = (0..settings.sustained_connections)
        .map(|i| {
            tokio::spawn(client(
                addr,
                tokens[i % tokens.len()].clone(),
                body.clone(),
                started,
                stop_at,
            ))
        })
        .collect();
    let mut marks = Vec::new();
    let mut at = started + interval;
    while at <= stop_at {
        tokio::time::sleep_until(at.into()).await;
        let parts: u64 = db
            .client()
            .query(
                "SELECT count() FROM system.parts \
                 WHERE database = currentDatabase() AND table = 'pulses' AND active",
            )
            .fetch_one()
            .await
            .map_err(|e| e.to_string())?;
        marks.push((
            parts,
            app.log.disk_bytes(),
            app.shipper.stats.rows.load(Ordering::Relaxed),
        ));
        at += interval;
    }
    let mut samples = Vec::new();
    let mut acked = 0;
    let mut other = Load {
        acked: 0,
        samples: Vec::new(),
        refused: BTreeMap::new(),
        errors: 0,
        cpu: CpuUse::default(),
    };
    for c in clients {
        let r = c.await.map_err(|e| e.to_string())?;
        acked += r.acked;
        samples.extend(r.samples);
        other.errors += r.errors;
        for (status, n) in r.refused {
            *other.refused.entry(status).or_default() += n;
        }
    }
    let step = interval.as_micros() as u64;
    let mut rates = Vec::new();
    for (i, (parts, log_bytes, shipped)) in marks.iter().enumerate() {
        let (from, to) = (i as u64 * step, (i as u64 + 1) * step);
        let mut l: Vec<u32> = samples
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, l)| *l)
            .collect();
        l.sort_unstable();
        let rate = l.len() as f64 / interval.as_secs_f64();
        rates.push(rate);
        println!(
            "  {:>6} | {:>10.0} | {:>5} / {:>5} ms | {:>12} | {:>11} KiB | {:>13}",
            (i + 1) as u64 * interval.as_secs(),
            rate,
            ms(percentile(&l, 0.50)),
            ms(percentile(&l, 0.99)),
            parts,
            log_bytes / 1024,
            shipped
        );
    }
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        let max_parts = marks.iter().map(|m| m.0).max().unwrap_or(0);
        println!(
            "  last interval at {:.0}% of the first (target ≥ 90%); active parts at most {max_parts} (target < 50); other answers: {}",
            100.0 * last / first.max(1.0),
            other.other_answers()
        );
    }
    Ok(acked)
}

/// Everything acknowledged is in ClickHouse, exactly: 3 rows and the XP of
/// one pulse per acknowledgement, and the server counted the same.
async fn check_stored(db: &Db, app: &AppState, acked: u64) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(120), app.flush())
        .await
        .map_err(|_| "the shipper did not catch up within 2 minutes".to_string())?;
    let (rows, xp): (u64, u64) = db
        .client()
        .query("SELECT count(), sum(xp) FROM pulses")
        .fetch_one()
        .await
        .map_err(|e| e.to_string())?;
    let xp_per_pulse: u64 = XPS.iter().map(|(_, xp)| u64::from(*xp)).sum();
    if rows != XPS.len() as u64 * acked || xp != xp_per_pulse * acked {
        return Err(format!(
            "stored {rows} rows and {xp} xp, acknowledged {acked} pulses: expected {} rows and {} xp",
            XPS.len() as u64 * acked,
            xp_per_pulse * acked
        ));
    }
    let accepted = app.stats.accepted.load(Ordering::Relaxed);
    if accepted != acked {
        return Err(format!(
            "the server counted {accepted} accepted pulses, the clients {acked}"
        ));
    }
    Ok(())
}
