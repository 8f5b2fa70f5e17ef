//! The load of the ingest benchmarks: keep-alive HTTP/1.1 clients posting
//! Code::Stats pulses (3 XP items each) back to back over [`TOKENS`]
//! tokens, the HTTP floor they are compared with, and the CPU use of a
//! measured window. Included by `ingest.rs` and `cluster.rs`.

use axum::{Router, body::Bytes as AxumBytes, http::StatusCode as AxumStatus, routing::post};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, body::Bytes};
use hyper_util::rt::TokioIo;
use sql::Db;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

/// The XP items of every pulse: 3 languages.
pub const XPS: [(&str, u32); 3] = [("Rust", 12), ("Go", 5), ("SQL", 3)];
/// Tokens (machines) the connections take turns with.
pub const TOKENS: usize = 100;

/// What one connection saw.
#[derive(Default)]
pub struct ClientReport {
    /// 201s over the whole phase, warm-up included.
    pub acked: u64,
    /// (µs since the phase's measuring began when answered, latency in µs)
    /// of the 201s sent and answered inside the measured window.
    pub samples: Vec<(u64, u32)>,
    /// Other answers, by status.
    pub refused: BTreeMap<u16, u64>,
    /// Connection or protocol errors.
    pub errors: u64,
}

/// One phase's load, summed over connections.
pub struct Load {
    pub acked: u64,
    pub samples: Vec<(u64, u32)>,
    pub refused: BTreeMap<u16, u64>,
    pub errors: u64,
    pub cpu: CpuUse,
}

impl Load {
    pub fn per_sec(&self, window: Duration) -> f64 {
        self.samples.len() as f64 / window.as_secs_f64()
    }

    pub fn latencies(&self) -> Vec<u32> {
        let mut l: Vec<u32> = self.samples.iter().map(|(_, l)| *l).collect();
        l.sort_unstable();
        l
    }

    pub fn other_answers(&self) -> String {
        if self.refused.is_empty() && self.errors == 0 {
            "none".to_owned()
        } else {
            format!("{:?}, {} connection errors", self.refused, self.errors)
        }
    }
}

/// Runs a benchmark on a multi-threaded runtime: success, or its message
/// and a failing exit code.
pub fn run_main(
    bench: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(bench) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nBENCHMARK FAILED: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole number in environment variable `name`, or `default` when it
/// is unset; anything else stops the benchmark.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// The HTTP floor: reads and parses the body as ingest does (the same
/// parser), answers what ingest answers, stores nothing.
pub fn floor_router() -> Router {
    Router::new().route(
        "/api/my/pulses",
        post(|body: AxumBytes| async move {
            let now = chrono::Utc::now().timestamp();
            match ingest::pulse::parse(&body, now) {
                Ok(_) => (
                    AxumStatus::CREATED,
                    axum::Json(serde_json::json!({"ok": "Great success!"})),
                ),
                Err(e) => (
                    AxumStatus::BAD_REQUEST,
                    axum::Json(serde_json::json!({"error": e})),
                ),
            }
        }),
    )
}

pub fn pulse_body() -> String {
    let coded_at = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    serde_json::json!({
        "coded_at": coded_at,
        "xps": XPS.iter().map(|(l, xp)| serde_json::json!({"language": l, "xp": xp})).collect::<Vec<_>>(),
    })
    .to_string()
}

/// `connections` clients post for `warmup` + `measured`, connection `i`
/// to `addrs[i % addrs.len()]` with `tokens[i % tokens.len()]`.
pub async fn drive(
    addrs: &[SocketAddr],
    tokens: &[String],
    body: &Bytes,
    connections: usize,
    warmup: Duration,
    measured: Duration,
) -> Result<Load, String> {
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + measured;
    let clients: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(client(
                addrs[i % addrs.len()],
                tokens[i % tokens.len()].clone(),
                body.clone(),
                measure_from,
                stop_at,
            ))
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = CpuTimes::now();
    tokio::time::sleep_until(stop_at.into()).await;
    let cpu = CpuTimes::now().since(&cpu_before);
    let mut load = Load {
        acked: 0,
        samples: Vec::new(),
        refused: BTreeMap::new(),
        errors: 0,
        cpu,
    };
    for c in clients {
        let r = c.await.map_err(|e| e.to_string())?;
        load.acked += r.acked;
        load.samples.extend(r.samples);
        load.errors += r.errors;
        for (status, n) in r.refused {
            *load.refused.entry(status).or_default() += n;
        }
    }
    Ok(load)
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn ms(us: u32) -> String {
    format!("{:.1}", f64::from(us) / 1000.0)
}

/// `n` machines' tokens: one user per 8 machines, every other user private.
pub async fn machines(db: &Db, n: usize) -> Vec<String> {
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
pub async fn client(
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
                    report.samples.push((
                        done.duration_since(measure_from).as_micros() as u64,
                        us.min(u128::from(u32::MAX)) as u32,
                    ));
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

/// CPU use between two readings of /proc (Linux; zeros elsewhere).
struct CpuTimes {
    machine_busy: u64,
    machine_total: u64,
    process: u64,
    at: Instant,
}

/// What a measured window used.
#[derive(Default)]
pub struct CpuUse {
    /// Share of the machine's CPU time that was busy (all processes).
    pub machine_busy: f64,
    /// Cores this process used on average.
    pub process_cores: f64,
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
