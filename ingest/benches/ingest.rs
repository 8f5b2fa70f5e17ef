//! The ingest benchmark (issue 3): many concurrent keep-alive clients post
//! Code::Stats pulses to the real router on loopback; pulses/s and latency
//! are reported next to the raw rate of inserting the same rows into
//! ClickHouse with `sql::pulses::insert`, in the same run.
//!
//! ```sh
//! cargo bench -p ingest --bench ingest
//! BENCH_CONNECTIONS=256 BENCH_SECS=20 cargo bench -p ingest --bench ingest
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BENCH_CONNECTIONS` | 128 | concurrent keep-alive connections, one token each |
//! | `BENCH_SECS` | 10 | measured seconds |
//! | `BENCH_WARMUP_SECS` | 3 | seconds of load before measuring |
//!
//! The database is `t_bench_ingest` on the test suite's ClickHouse
//! (`sql::testing`), recreated at each run; the baseline writes to
//! `t_bench_ingest_baseline`. The per-token rate limit is raised (a real
//! plugin sends one pulse per ~10 s; here every connection sends as fast as
//! it is answered), so the limiter is on the path but never refuses.
//! Server, load generator and ClickHouse share the machine's cores.
//!
//! Exits non-zero when the stored rows are not exactly 3 × the pulses
//! acknowledged with 201.

use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, body::Bytes};
use hyper_util::rt::TokioIo;
use ingest::{App, IngestConfig};
use sql::{Db, pulses::PulseRow};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::ExitCode,
    time::{Duration, Instant},
};

/// The XP items of every pulse: 3 languages.
const XPS: [(&str, u32); 3] = [("Rust", 12), ("Go", 5), ("SQL", 3)];

struct Settings {
    connections: usize,
    measured: Duration,
    warmup: Duration,
}

impl Settings {
    fn from_env() -> Self {
        fn var(name: &str, default: u64) -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
                Err(_) => default,
            }
        }
        Self {
            connections: var("BENCH_CONNECTIONS", 128).max(1) as usize,
            measured: Duration::from_secs(var("BENCH_SECS", 10).max(1)),
            warmup: Duration::from_secs(var("BENCH_WARMUP_SECS", 3)),
        }
    }
}

/// What one connection saw.
#[derive(Default)]
struct ClientReport {
    /// 201s over the whole run, warm-up included.
    acked: u64,
    /// Latencies (µs) of the 201s sent and answered inside the measured window.
    latencies_us: Vec<u32>,
    /// Other answers, by status.
    refused: BTreeMap<u16, u64>,
    /// Connection or protocol errors.
    errors: u64,
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(&settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nBENCHMARK FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: &Settings) -> Result<(), String> {
    let db = sql::testing::fresh_db("bench_ingest").await;
    let version = db.version().await.map_err(|e| e.to_string())?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let tokens = machines(&db, settings.connections).await;

    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = IngestConfig::new(data.path());
    config.rate_per_minute = 100_000_000;
    config.rate_burst = 100_000;
    if let Some(n) = std::env::var("BENCH_INSERTS_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.inserts_in_flight = n;
    }
    let app = App::start(db.clone(), &config)
        .await
        .map_err(|e| e.to_string())?;
    // The server `codestats serve` runs, with its limits.
    let server = ingest::server::RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        ingest::router(app.clone()),
        ingest::server::ServerLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let addr = server.addr;

    let coded_at = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let body = serde_json::json!({
        "coded_at": coded_at,
        "xps": XPS.iter().map(|(l, xp)| serde_json::json!({"language": l, "xp": xp})).collect::<Vec<_>>(),
    })
    .to_string();
    let body = Bytes::from(body);

    let started = Instant::now();
    let measure_from = started + settings.warmup;
    let stop_at = measure_from + settings.measured;
    let clients: Vec<_> = tokens
        .into_iter()
        .map(|token| tokio::spawn(client(addr, token, body.clone(), measure_from, stop_at)))
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = CpuTimes::now();
    tokio::time::sleep_until(stop_at.into()).await;
    let cpu = CpuTimes::now().since(&cpu_before);
    let mut reports = Vec::with_capacity(clients.len());
    for c in clients {
        reports.push(c.await.map_err(|e| e.to_string())?);
    }
    app.shutdown().await;
    drop(server);

    let acked: u64 = reports.iter().map(|r| r.acked).sum();
    let errors: u64 = reports.iter().map(|r| r.errors).sum();
    let mut refused: BTreeMap<u16, u64> = BTreeMap::new();
    for r in &reports {
        for (status, n) in &r.refused {
            *refused.entry(*status).or_default() += n;
        }
    }
    let mut latencies: Vec<u32> = reports.into_iter().flat_map(|r| r.latencies_us).collect();
    latencies.sort_unstable();
    let measured = latencies.len() as u64;
    let secs = settings.measured.as_secs_f64();
    let pulses_per_sec = measured as f64 / secs;

    let (rows, xp, batches): (u64, u64, u64) = db
        .client()
        .query("SELECT count(), sum(xp), uniqExact(batch_id) FROM pulses")
        .fetch_one()
        .await
        .map_err(|e| e.to_string())?;
    let xp_per_pulse: u64 = XPS.iter().map(|(_, xp)| u64::from(*xp)).sum();

    println!();
    println!(
        "ingest: {} keep-alive connections ({} tokens), {} s measured after {} s warm-up, \
         {} xps per pulse, ClickHouse {version}, {} cores shared by server, clients and ClickHouse",
        settings.connections,
        settings.connections,
        settings.measured.as_secs(),
        settings.warmup.as_secs(),
        XPS.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    row(
        "load average before the run",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    row("pulses/s (201)", format!("{pulses_per_sec:.0}"));
    row(
        "rows/s",
        format!("{:.0}", pulses_per_sec * XPS.len() as f64),
    );
    row(
        "latency p50 / p99 / p99.9 / max",
        format!(
            "{} / {} / {} / {} ms",
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            ms(percentile(&latencies, 0.999)),
            ms(latencies.last().copied().unwrap_or(0)),
        ),
    );
    row(
        "INSERTs (whole run)",
        format!(
            "{batches}, {:.0} rows each on average",
            rows as f64 / batches.max(1) as f64
        ),
    );
    row(
        "CPU while measured",
        format!(
            "{:.0}% of the machine busy; this process {:.2} cores",
            cpu.machine_busy * 100.0,
            cpu.process_cores
        ),
    );
    row(
        "answers other than 201",
        if refused.is_empty() && errors == 0 {
            "none".to_owned()
        } else {
            format!("{refused:?}, {errors} connection errors")
        },
    );
    row(
        "stored rows",
        format!("{rows} (3 × {acked} acknowledged pulses = {})", 3 * acked),
    );

    if rows != XPS.len() as u64 * acked || xp != xp_per_pulse * acked {
        return Err(format!(
            "stored {rows} rows and {xp} xp, acknowledged {acked} pulses: expected {} rows and {} xp",
            XPS.len() as u64 * acked,
            xp_per_pulse * acked
        ));
    }
    if measured == 0 {
        return Err("no pulse was acknowledged in the measured window".into());
    }
    let accepted = app
        .stats
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    if accepted != acked {
        return Err(format!(
            "the server counted {accepted} accepted pulses, the clients {acked}"
        ));
    }

    // Baseline: the same rows, straight into ClickHouse.
    let baseline = sql::testing::fresh_db("bench_ingest_baseline").await;
    let same = synthetic_rows(rows as usize);
    let mean_batch = (rows / batches.max(1)).max(1) as usize;
    let small = insert_rate(&baseline, &same, mean_batch, Some(settings.measured)).await?;
    let big = insert_rate(&baseline, &same, ingest::commit::MAX_BATCH_ROWS, None).await?;
    let ingest_rows = pulses_per_sec * XPS.len() as f64;
    println!(
        "baseline: sql::pulses::insert of the same {rows} rows, one INSERT at a time, ingest stopped"
    );
    row(
        &format!("{}-row INSERTs", ingest::commit::MAX_BATCH_ROWS),
        format!(
            "{:.0} rows/s; ingest reaches {:.1}% of it",
            big,
            100.0 * ingest_rows / big
        ),
    );
    row(
        &format!("{mean_batch}-row INSERTs (ingest's mean)"),
        format!(
            "{:.0} rows/s; ingest reaches {:.1}% of it",
            small,
            100.0 * ingest_rows / small
        ),
    );
    drop(data);
    Ok(())
}

fn row(label: &str, value: String) {
    println!("  {label:<34} {value}");
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(us: u32) -> String {
    format!("{:.1}", f64::from(us) / 1000.0)
}

/// One user per 8 machines, one machine (token) per connection.
async fn machines(db: &Db, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let user = format!("bench{}", i / 8);
        if i % 8 == 0 {
            sql::accounts::add_user(db, &user, "", i % 16 == 8)
                .await
                .expect("add user");
        }
        let (_, token) = sql::accounts::add_machine(db, &user, &format!("m{i}"))
            .await
            .expect("add machine");
        tokens.push(token);
    }
    tokens
}

/// One keep-alive connection posting `body` back to back until `stop_at`.
async fn client(
    addr: SocketAddr,
    token: String,
    body: Bytes,
    measure_from: Instant,
    stop_at: Instant,
) -> ClientReport {
    let mut report = ClientReport::default();
    let mut sender = None;
    while Instant::now() < stop_at {
        let send = match &mut sender {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    report.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let request = Request::post("/api/my/pulses")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("x-api-token", &token)
            .body(Full::new(body.clone()))
            .expect("valid request");
        let sent = Instant::now();
        let answer = match send.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                response.into_body().collect().await.map(|_| status)
            }
            Err(e) => Err(e),
        };
        let done = Instant::now();
        match answer {
            Ok(StatusCode::CREATED) => {
                report.acked += 1;
                if sent >= measure_from && done <= stop_at {
                    let us = done.duration_since(sent).as_micros();
                    report
                        .latencies_us
                        .push(us.min(u128::from(u32::MAX)) as u32);
                }
            }
            Ok(status) => *report.refused.entry(status.as_u16()).or_default() += 1,
            Err(_) => {
                report.errors += 1;
                sender = None;
            }
        }
    }
    report
}

async fn connect(
    addr: SocketAddr,
) -> Result<
    hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `n` rows shaped as the ingest's: 3 languages per pulse, one batch id and
/// `received_at` per INSERT (set by `insert_rate`).
fn synthetic_rows(n: usize) -> Vec<PulseRow> {
    let now = chrono::Utc::now().timestamp() as u32;
    (0..n)
        .map(|i| {
            let (language, xp) = XPS[i % XPS.len()];
            PulseRow {
                pulse_id: rand::random(),
                batch_id: 0,
                user_id: (i / 24 % 16) as u64 + 1,
                machine_id: (i / 3 % 128) as u64 + 1,
                coded_at: now - 5,
                utc_offset: 120,
                language: language.to_owned(),
                xp,
                received_at: now,
            }
        })
        .collect()
}

/// Inserts `rows` in INSERTs of `chunk` rows, one after the other, for at
/// most `limit`; returns rows per second.
async fn insert_rate(
    db: &Db,
    rows: &[PulseRow],
    chunk: usize,
    limit: Option<Duration>,
) -> Result<f64, String> {
    let started = Instant::now();
    let mut written = 0usize;
    for part in rows.chunks(chunk) {
        let batch_id = rand::random::<u64>();
        let part: Vec<PulseRow> = part
            .iter()
            .map(|r| PulseRow {
                batch_id,
                ..r.clone()
            })
            .collect();
        sql::pulses::insert(db, &part)
            .await
            .map_err(|e| format!("baseline insert: {e}"))?;
        written += part.len();
        if limit.is_some_and(|l| started.elapsed() >= l) {
            break;
        }
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

/// CPU use between two readings of /proc (Linux; zeros elsewhere).
struct CpuTimes {
    machine_busy: u64,
    machine_total: u64,
    process: u64,
    at: Instant,
}

struct CpuUse {
    machine_busy: f64,
    process_cores: f64,
}

impl CpuTimes {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let total: u64 = fields.iter().sum();
        // idle + iowait
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may hold spaces): utime, stime are 14 and 15.
        let after = own.rsplit_once(')').map_or("", |(_, rest)| rest);
        let f: Vec<u64> = after
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // `after` starts at field 3 (the state), so fields 14 and 15 are 11 and 12 here.
        let process = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Self {
            machine_busy: total - idle,
            machine_total: total,
            process,
            at: Instant::now(),
        }
    }

    fn since(&self, before: &Self) -> CpuUse {
        let total = self
            .machine_total
            .saturating_sub(before.machine_total)
            .max(1) as f64;
        // Clock ticks are 100 per second on Linux.
        let secs = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        CpuUse {
            machine_busy: self.machine_busy.saturating_sub(before.machine_busy) as f64 / total,
            process_cores: self.process.saturating_sub(before.process) as f64 / 100.0 / secs,
        }
    }
}
