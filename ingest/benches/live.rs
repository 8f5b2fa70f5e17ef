//! The live-feed benchmark (issue 6): many open `/live` streams on the real
//! router, pulses posted through the real ingest endpoint, and the delay
//! from each 201 to the event reaching every subscriber, with the process's
//! memory.
//!
//! ```sh
//! cargo bench -p ingest --bench live
//! LIVE_SUBSCRIBERS=2000 LIVE_PULSES=100 cargo bench -p ingest --bench live
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LIVE_SUBSCRIBERS` | 10000 | open streams: 9 in 10 on `/live`, 1 in 10 on the poster's profile |
//! | `LIVE_PULSES` | 200 | pulses posted, one at a time |
//! | `LIVE_INTERVAL_MS` | 50 | pause between two pulses |
//!
//! Every subscriber is a plain TCP connection in this process reading with a
//! 4 KiB buffer, so RSS counts the clients' side too; the server's share is
//! given apart (growth while the streams were opened, minus the clients'
//! own buffers). The fd limit is raised with `setrlimit` to what the hard
//! limit allows: clients and server share the process, so N subscribers
//! take 2·N descriptors (where the hard limit is 20,000, as here, 9,500 is
//! the most that fits). Exits non-zero when a subscriber misses an event.

use ingest::{App, IngestConfig};
use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Settings {
    subscribers: usize,
    pulses: usize,
    interval: Duration,
}

fn var(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

fn main() -> ExitCode {
    let settings = Settings {
        subscribers: var("LIVE_SUBSCRIBERS", 10_000).max(1) as usize,
        pulses: var("LIVE_PULSES", 200).max(1) as usize,
        interval: Duration::from_millis(var("LIVE_INTERVAL_MS", 50)),
    };
    raise_fd_limit(settings.subscribers as u64 * 2 + 1000);
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

fn raise_fd_limit(wanted: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < wanted
    {
        // root may raise the hard limit too; otherwise go as far as it allows
        if setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted.max(hard)).is_err() {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
        }
    }
}

/// `VmRSS` or `VmHWM` of this process, KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// One subscriber: opens the stream, then notes when each event id arrives.
async fn subscriber(
    addr: SocketAddr,
    path: String,
    expected: usize,
    connected: Arc<tokio::sync::Semaphore>,
) -> Result<Vec<(u64, Instant)>, String> {
    let mut announced = false;
    let result = subscribe(addr, &path, expected, &connected, &mut announced).await;
    if !announced {
        // failed before it was subscribed: do not keep the opening waiting
        connected.add_permits(1);
    }
    result
}

async fn subscribe(
    addr: SocketAddr,
    path: &str,
    expected: usize,
    connected: &tokio::sync::Semaphore,
    announced: &mut bool,
) -> Result<Vec<(u64, Instant)>, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let mut carry: Vec<u8> = Vec::new();
    let mut seen = Vec::with_capacity(expected);
    while seen.len() < expected {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .map_err(|_| "nothing read for 30 s")?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("stream ended after {} events", seen.len()));
        }
        let now = Instant::now();
        if !*announced {
            // headers and the `retry:` preamble came: subscribed
            *announced = true;
            connected.add_permits(1);
        }
        carry.extend_from_slice(&buf[..n]);
        // ids are whole lines `id: N\n`; keep an unfinished tail for later
        let mut start = 0;
        while let Some(i) = carry[start..].iter().position(|&b| b == b'\n') {
            let line = &carry[start..start + i];
            if let Some(id) = line.strip_prefix(b"id: ") {
                let id = std::str::from_utf8(id).ok().and_then(|s| s.parse().ok());
                seen.push((id.ok_or("bad id")?, now));
            }
            start += i + 1;
        }
        carry.drain(..start);
    }
    Ok(seen)
}

async fn run(settings: &Settings) -> Result<(), String> {
    let db = sql::testing::fresh_db("bench_live").await;
    sql::accounts::add_user(&db, "poster", "", false)
        .await
        .map_err(|e| e.to_string())?;
    let (_, token) = sql::accounts::add_machine(&db, "poster", "m")
        .await
        .map_err(|e| e.to_string())?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();

    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = IngestConfig::new(data.path());
    config.rate_per_minute = 100_000_000;
    config.rate_burst = 100_000;
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = status_kib("VmRSS:");

    // open every stream, a few hundred at a time
    let connected = Arc::new(tokio::sync::Semaphore::new(0));
    let opening = Instant::now();
    let mut subscribers = Vec::with_capacity(settings.subscribers);
    for i in 0..settings.subscribers {
        let path = if i % 10 == 9 {
            "/live/users/poster"
        } else {
            "/live"
        };
        subscribers.push(tokio::spawn(subscriber(
            addr,
            path.to_owned(),
            settings.pulses,
            connected.clone(),
        )));
        if i % 250 == 249 {
            // (the permits go back when the guard drops)
            let _ = connected.acquire_many((i + 1 - 250) as u32).await;
        }
    }
    let all = connected
        .acquire_many(settings.subscribers as u32)
        .await
        .map_err(|e| e.to_string())?;
    drop(all);
    let open_secs = opening.elapsed().as_secs_f64();
    let open_streams = app
        .live
        .stats
        .open
        .load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = status_kib("VmRSS:");

    // post, one pulse at a time; the k-th accepted pulse has seq base + k
    let seq_base = app.stats.seq_base;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/my/pulses");
    let mut acked_at = Vec::with_capacity(settings.pulses);
    let posting = Instant::now();
    for k in 0..settings.pulses {
        let body = serde_json::json!({
            "coded_at": chrono::Utc::now().to_rfc3339(),
            "xps": [{"language": "Rust", "xp": 10 + k % 7}, {"language": "Go", "xp": 3}],
        });
        let r = http
            .post(&url)
            .header("x-api-token", &token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != reqwest::StatusCode::CREATED {
            return Err(format!("post {k}: {}", r.status()));
        }
        acked_at.push(Instant::now());
        tokio::time::sleep(settings.interval).await;
    }
    let post_secs = posting.elapsed().as_secs_f64();

    let mut delays_us: Vec<u64> = Vec::with_capacity(settings.subscribers * settings.pulses);
    let mut failed = 0;
    for s in subscribers {
        match tokio::time::timeout(Duration::from_secs(60), s).await {
            Ok(Ok(Ok(seen))) => {
                for (seq, at) in seen {
                    let acked = acked_at[(seq - seq_base - 1) as usize];
                    // an event may arrive before its 201 does: delay 0
                    delays_us.push(at.saturating_duration_since(acked).as_micros() as u64);
                }
            }
            Ok(Ok(Err(e))) => {
                failed += 1;
                if failed < 5 {
                    eprintln!("subscriber: {e}");
                }
            }
            _ => failed += 1,
        }
    }
    let rss_end = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    let dropped = app
        .live
        .stats
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    app.shutdown().await;
    drop(server);
    delays_us.sort_unstable();
    let pct = |p: f64| {
        delays_us
            .get(((delays_us.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };

    let clients_kib = settings.subscribers as u64 * 4096 / 1024 * 2; // buffers + carry, roughly
    println!();
    println!(
        "live: {} subscribers ({} on /live, {} on one profile), {} pulses one at a time every {} ms, \
         {} cores shared by server, clients and ClickHouse",
        settings.subscribers,
        settings.subscribers - settings.subscribers / 10,
        settings.subscribers / 10,
        settings.pulses,
        settings.interval.as_millis(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    row(
        "load average before the run",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    row(
        "streams open (server count)",
        format!("{open_streams} in {open_secs:.1} s"),
    );
    row(
        "events delivered",
        format!(
            "{} of {} ({} subscribers failed, {} dropped as lagging)",
            delays_us.len(),
            settings.subscribers * settings.pulses,
            failed,
            dropped
        ),
    );
    row(
        "posting",
        format!(
            "{:.1} s ({:.0} pulses/s)",
            post_secs,
            settings.pulses as f64 / post_secs
        ),
    );
    row(
        "201 → event p50 / p99 / p99.9 / max",
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} ms",
            pct(0.50),
            pct(0.99),
            pct(0.999),
            delays_us.last().copied().unwrap_or(0) as f64 / 1000.0
        ),
    );
    row(
        "RSS before / streams open / end / peak",
        format!(
            "{} / {} / {} / {} MiB",
            rss_before / 1024,
            rss_open / 1024,
            rss_end / 1024,
            hwm / 1024
        ),
    );
    let per_stream =
        (rss_open.saturating_sub(rss_before)) as f64 * 1024.0 / settings.subscribers as f64;
    row(
        "RSS growth per stream (server + client)",
        format!(
            "{:.1} KiB (client buffers ≈ {:.1} KiB of it)",
            per_stream / 1024.0,
            clients_kib as f64 / settings.subscribers as f64
        ),
    );
    if failed > 0 || delays_us.len() != settings.subscribers * settings.pulses {
        return Err(format!("{failed} subscribers did not get every event"));
    }
    Ok(())
}

fn row(name: &str, value: String) {
    println!("  {name:<42} {value}");
}
