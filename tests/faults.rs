//! Crashes at random moments under load: round after round, `codestats
//! serve`, its ClickHouse, or both at once are killed with SIGKILL while
//! clients keep sending pulses, then started again. In the end ClickHouse
//! holds every acknowledged pulse exactly once and nothing that was
//! refused, and `xp_hourly` sums exactly what `pulses` holds.
//!
//! `FAULT_ROUNDS` sets the number of rounds (default 12), `FAULT_SEED` the
//! seed of the schedule: which fault, when, and for how long (printed at the
//! start, so a failing schedule can be run again).

mod common;

use common::BIN;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use reqwest::StatusCode;
use serde_json::json;
use sql::{
    Db,
    local_server::{LocalServer, LocalServerConfig},
};
use std::{
    collections::{HashMap, HashSet},
    fs,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

const DEFAULT_ROUNDS: usize = 12;
/// Machines sending pulses.
const MACHINES: usize = 4;
/// Requests each machine has under way at once.
const STREAMS: u32 = 4;
const LANGUAGES: [&str; 3] = ["Rust", "Go", "Python"];

/// A pulse: its machine's name and its `coded_at`, unique per machine.
type Key = (String, u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ClickHouse,
    Serve,
    Both,
}

/// What one client saw.
#[derive(Default)]
struct Ledger {
    /// Answered 201: must be stored exactly once, with this XP.
    acked: HashMap<Key, u64>,
    /// Answered 503: must not be stored.
    refused: HashSet<Key>,
    /// Sent, but the connection broke before an answer: stored or not.
    uncertain: HashSet<Key>,
    /// Not sent: nobody listened on the port.
    unreachable: u64,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.acked.extend(other.acked);
        self.refused.extend(other.refused);
        self.uncertain.extend(other.uncertain);
        self.unreachable += other.unreachable;
    }
}

/// One stream of a machine's pulses.
struct Stream {
    machine: String,
    token: String,
    url: String,
    /// The coder's time zone.
    zone: chrono::FixedOffset,
    /// `coded_at` of the machine's first pulse.
    base: i64,
    /// Which one of the machine's [`STREAMS`]: it sends the pulses of
    /// every `STREAMS`th second from `base + stream` on.
    stream: u32,
}

/// Sends `stream`'s pulses one after another until `stop`, and notes how
/// each was answered.
async fn client(stream: Stream, stop: Arc<AtomicBool>, acked_so_far: Arc<AtomicU64>) -> Ledger {
    let Stream {
        machine,
        token,
        url,
        zone,
        base,
        stream,
    } = stream;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut ledger = Ledger::default();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let coded_at = base + i64::from(n * STREAMS + stream);
        assert!(
            coded_at < chrono::Utc::now().timestamp(),
            "{machine} ran out of past seconds"
        );
        let xp = u64::from(n % 40 + 1);
        let language = LANGUAGES[n as usize % LANGUAGES.len()];
        n += 1;
        let key = (machine.clone(), coded_at as u32);
        let body = json!({
            "coded_at": chrono::DateTime::from_timestamp(coded_at, 0)
                .unwrap()
                .with_timezone(&zone)
                .to_rfc3339(),
            "xps": [{"language": language, "xp": xp}],
        });
        let sent = http
            .post(&url)
            .header("X-API-Token", &token)
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == StatusCode::CREATED => {
                ledger.acked.insert(key, xp);
                acked_so_far.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                ledger.refused.insert(key);
            }
            Ok(r) => panic!(
                "{machine}: pulse answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) if e.is_connect() => ledger.unreachable += 1,
            Err(_) => {
                ledger.uncertain.insert(key);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ledger
}

/// ClickHouse and `codestats serve` over it, each started and killed at
/// will. On a panic, tells what is needed to understand it.
struct Cluster {
    /// Holds everything below; kept for a look when the test fails.
    dir: Option<tempfile::TempDir>,
    ch_config: LocalServerConfig,
    ch: Option<LocalServer>,
    data: PathBuf,
    listen: u16,
    serve: Option<Child>,
    serve_log: PathBuf,
    serve_starts: usize,
    seed: u64,
    round: usize,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut serve) = self.serve.take() {
            let _ = serve.kill();
            let _ = serve.wait();
        }
        if std::thread::panicking() {
            let log = fs::read_to_string(&self.serve_log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "FAILED with FAULT_SEED={} in round {}; files kept in {}\nshipper.json: {}\n\
                 log segments: {:?}\nlast lines of serve's output:\n{}",
                self.seed,
                self.round,
                self.dir
                    .take()
                    .map(|d| d.keep())
                    .unwrap_or_default()
                    .display(),
                fs::read_to_string(ingest::ship::state::path(&self.log_dir())).unwrap_or_default(),
                ingest::log::segment::list(&self.log_dir()).unwrap_or_default(),
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
    }
}

impl Cluster {
    fn log_dir(&self) -> PathBuf {
        self.data.join("log")
    }

    fn spawn_serve(&mut self) {
        assert!(self.serve.is_none(), "serve is running already");
        self.serve_starts += 1;
        let writer = self
            .ch_config
            .clickhouse_config(sql::config::DEFAULT_DATABASE)
            .unwrap();
        let mut out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.serve_log)
            .unwrap();
        use std::io::Write;
        writeln!(
            out,
            "=== start {} (round {})",
            self.serve_starts, self.round
        )
        .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.listen)])
            .env("CODESTATS_CLICKHOUSE_URL", self.ch_config.url())
            .env("CODESTATS_CLICKHOUSE_USER", &writer.user)
            .env("CODESTATS_CLICKHOUSE_PASSWORD", writer.password.expose())
            .env("CODESTATS_DATA_DIR", &self.data)
            .env("CODESTATS_RATE_PER_MINUTE", "100000000")
            .env("CODESTATS_RATE_BURST", "1000000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start codestats serve");
        self.serve = Some(child);
    }

    /// Waits until serve answers `/healthz` with 200; its exit status if it
    /// ended first.
    async fn wait_serve(&mut self) -> Result<(), ExitStatus> {
        let url = format!("http://127.0.0.1:{}/healthz", self.listen);
        let started = Instant::now();
        loop {
            let child = self.serve.as_mut().expect("serve started");
            if let Some(status) = child.try_wait().unwrap() {
                self.serve = None;
                return Err(status);
            }
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve did not answer /healthz within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start_serve(&mut self) {
        self.spawn_serve();
        if let Err(status) = self.wait_serve().await {
            panic!("serve exited with {status} at start");
        }
    }

    fn kill_serve(&mut self) {
        let mut serve = self.serve.take().expect("serve running");
        serve.kill().unwrap(); // SIGKILL
        serve.wait().unwrap();
    }

    /// SIGTERM: serve drains what it can and must exit cleanly.
    fn stop_serve(&mut self) {
        let mut serve = self.serve.take().expect("serve running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(serve.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = serve.wait().unwrap();
        assert!(status.success(), "serve exited with {status} on SIGTERM");
    }

    async fn start_clickhouse(&mut self) {
        assert!(self.ch.is_none(), "clickhouse is running already");
        self.ch = Some(
            LocalServer::start(self.ch_config.clone())
                .await
                .expect("start clickhouse"),
        );
    }

    async fn kill_clickhouse(&mut self) {
        self.ch.take().expect("clickhouse running").kill().await;
    }

    /// A fresh connection (the old ones died with the server).
    fn db(&self) -> Db {
        Db::new(
            &self.ch_config.url(),
            &self
                .ch_config
                .clickhouse_config(sql::config::DEFAULT_DATABASE)
                .unwrap(),
        )
        .unwrap()
    }

    /// Whether the shipper holds no block in doubt and has shipped the
    /// whole log.
    fn shipped_everything(&self) -> bool {
        let dir = self.log_dir();
        let Ok(state) = ingest::ship::state::State::load(&dir) else {
            return false;
        };
        let Some(&last) = ingest::log::segment::list(&dir).unwrap().last() else {
            return false;
        };
        let end = ingest::log::Position {
            segment: last,
            offset: fs::metadata(ingest::log::segment::path(&dir, last))
                .unwrap()
                .len(),
        };
        state.intent.is_none() && state.shipped == end
    }

    /// Serve's output lines containing `text`.
    fn serve_log_count(&self, text: &str) -> usize {
        fs::read_to_string(&self.serve_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }
}

async fn pulse_count(db: &Db) -> Option<u64> {
    db.client()
        .query("SELECT count() FROM pulses")
        .fetch_one()
        .await
        .ok()
}

/// The (machine, coded_at) of every stored pulse.
async fn stored_keys(db: &Db) -> Vec<Key> {
    db.client()
        .query(
            "SELECT name, coded_at FROM pulses \
             ANY INNER JOIN (SELECT machine_id, name FROM machines FINAL) USING machine_id",
        )
        .fetch_all()
        .await
        .expect("read stored pulses")
}

/// Waits until `acked` has grown by at least one from `from`.
async fn wait_for_acks(acked: &AtomicU64, from: u64, what: &str) {
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) <= from {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no pulse acknowledged within 30 s {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILLs ClickHouse, serve or both at random moments while four
/// machines send pulses without pause, four at a time each; every
/// acknowledged pulse is stored exactly once, no refused one is, and
/// `xp_hourly` agrees with `pulses`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_at_random_moments_loses_and_doubles_nothing() {
    let started = Instant::now();
    let rounds: usize = std::env::var("FAULT_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("FAULT_ROUNDS is a number"))
        .unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .map(|v| v.parse().expect("FAULT_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("faults: FAULT_SEED={seed} FAULT_ROUNDS={rounds}");
    // Seeded, so a schedule can be replayed.
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut ch_config = LocalServerConfig::for_data_dir(&root.join("ch"));
    ch_config.http_port = sql::testing::free_port();
    ch_config.tcp_port = sql::testing::free_port();
    let mut cluster = Cluster {
        dir: Some(dir),
        ch_config,
        ch: None,
        data: root.join("data"),
        listen: sql::testing::free_port(),
        serve: None,
        serve_log: root.join("serve.log"),
        serve_starts: 0,
        seed,
        round: 0,
    };
    cluster.start_clickhouse().await;
    let db = cluster.db();
    sql::migrate::migrate(&db).await.unwrap();
    sql::accounts::add_user(&db, "faults", "", false)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..MACHINES {
        let (_, token) = sql::accounts::add_machine(&db, "faults", &format!("m{i}"))
            .await
            .unwrap();
        tokens.push(token);
    }
    drop(db);
    cluster.start_serve().await;

    // Code::Stats takes pulses up to 7 days old and makes a future one now:
    // from 6 days back, a second apart, each machine has days of distinct
    // `coded_at` before it reaches the present.
    let base = chrono::Utc::now().timestamp() - 6 * 86_400;
    let stop = Arc::new(AtomicBool::new(false));
    let acked_so_far = Arc::new(AtomicU64::new(0));
    let url = format!("http://127.0.0.1:{}/api/my/pulses", cluster.listen);
    let mut clients = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        // Different zones: local hours differ from UTC ones.
        let zone = chrono::FixedOffset::east_opt((i as i32 * 330 - 480) * 60).unwrap();
        for stream in 0..STREAMS {
            let stream = Stream {
                machine: format!("m{i}"),
                token: token.clone(),
                url: url.clone(),
                zone,
                base,
                stream,
            };
            clients.push(tokio::spawn(client(
                stream,
                stop.clone(),
                acked_so_far.clone(),
            )));
        }
    }

    // Each kind of fault equally often, in a random order.
    let mut schedule: Vec<Fault> = [Fault::ClickHouse, Fault::Serve, Fault::Both]
        .into_iter()
        .cycle()
        .take(rounds)
        .collect();
    schedule.shuffle(&mut rng);
    let mut acked_while_clickhouse_down = 0;
    let mut refused_starts = 0;
    for (round, &fault) in schedule.iter().enumerate() {
        cluster.round = round + 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..=1500))).await;
        let down = Duration::from_millis(rng.random_range(100..=1500));
        match fault {
            Fault::ClickHouse => {
                cluster.kill_clickhouse().await;
                let before = acked_so_far.load(Ordering::Relaxed);
                tokio::time::sleep(down).await;
                acked_while_clickhouse_down += acked_so_far.load(Ordering::Relaxed) - before;
                cluster.start_clickhouse().await;
            }
            Fault::Serve => {
                cluster.kill_serve();
                tokio::time::sleep(down).await;
                cluster.start_serve().await;
            }
            Fault::Both => {
                // At the same moment, or serve while its shipper retries
                // a block ClickHouse did not take.
                let gap = if rng.random_bool(0.5) {
                    Duration::ZERO
                } else {
                    Duration::from_millis(rng.random_range(50..=1000))
                };
                cluster.kill_clickhouse().await;
                tokio::time::sleep(gap).await;
                cluster.kill_serve();
                tokio::time::sleep(down).await;
                if rng.random_bool(0.5) {
                    cluster.start_clickhouse().await;
                    cluster.start_serve().await;
                } else {
                    // Serve first: it may give up before ClickHouse answers,
                    // then it is started again.
                    cluster.spawn_serve();
                    tokio::time::sleep(Duration::from_millis(rng.random_range(0..=300))).await;
                    cluster.start_clickhouse().await;
                    if cluster.wait_serve().await.is_err() {
                        refused_starts += 1;
                        cluster.start_serve().await;
                    }
                }
            }
        }
        if clients.iter().any(|c| c.is_finished()) {
            // Only a panic ends a client now: joining them tells which.
            break;
        }
        let now = acked_so_far.load(Ordering::Relaxed);
        wait_for_acks(&acked_so_far, now, &format!("after round {}", round + 1)).await;
    }

    stop.store(true, Ordering::Relaxed);
    let mut ledger = Ledger::default();
    for c in clients {
        ledger.merge(c.await.expect("client"));
    }

    // A graceful stop, then a start that ships whatever the drain left.
    cluster.round = rounds + 1;
    cluster.stop_serve();
    cluster.start_serve().await;
    let db = cluster.db();
    let waited = Instant::now();
    let mut last = (None, Instant::now());
    loop {
        let count = pulse_count(&db).await;
        if count != last.0 {
            last = (count, Instant::now());
        } else if count.is_some()
            && last.1.elapsed() >= Duration::from_secs(3)
            && cluster.shipped_everything()
        {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "the log was not shipped within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.stop_serve();

    let stored = sql::testing::assert_exactly_once(&db, &ledger.acked).await;
    let mut uncertain_stored = 0;
    for key in stored_keys(&db).await {
        assert!(
            !ledger.refused.contains(&key),
            "{key:?} was answered 503 but is stored"
        );
        if !ledger.acked.contains_key(&key) {
            assert!(
                ledger.uncertain.contains(&key),
                "{key:?} is stored but was never sent"
            );
            uncertain_stored += 1;
        }
    }
    assert_eq!(
        stored,
        ledger.acked.len() + uncertain_stored,
        "stored pulses are the acknowledged ones and some whose answer was lost"
    );
    sql::testing::assert_xp_consistent(&db).await;
    assert!(
        acked_while_clickhouse_down > 0 || !schedule.contains(&Fault::ClickHouse),
        "nothing was acknowledged while ClickHouse was down"
    );

    let kinds = |f| schedule.iter().filter(|&&s| s == f).count();
    eprintln!(
        "faults: {rounds} rounds (clickhouse {}, serve {}, both {}; serve gave up at start {refused_starts}), \
         acknowledged {} ({acked_while_clickhouse_down} while clickhouse was down), \
         answer lost {} (stored {uncertain_stored}), refused 503 {}, unreachable {}, stored {stored}, \
         blocks resumed after a crash {}, inserts failed {}, {:.1} s, FAULT_SEED={seed}",
        kinds(Fault::ClickHouse),
        kinds(Fault::Serve),
        kinds(Fault::Both),
        ledger.acked.len(),
        ledger.uncertain.len(),
        ledger.refused.len(),
        ledger.unreachable,
        cluster.serve_log_count("checking the block a previous process was writing"),
        cluster.serve_log_count("insert failed"),
        started.elapsed().as_secs_f64(),
    );
    cluster.kill_clickhouse().await;
}
