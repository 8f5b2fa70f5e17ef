//! The cluster benchmark: what one node carries on one ClickHouse server,
//! one node on a two-shard cluster, and two nodes on it, in one run and
//! under the load of the ingest benchmark (`common/load.rs`: keep-alive
//! clients posting Code::Stats pulses of 3 XP items over 100 tokens).
//!
//! ```sh
//! cargo bench -p ingest --bench cluster
//! BENCH_SECS=30 cargo bench -p ingest --bench cluster
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `BENCH_CONNECTIONS` | 256 | connections of every phase |
//! | `BENCH_SECS` | 10 | measured seconds per phase |
//! | `BENCH_WARMUP_SECS` | 3 | load before measuring, per phase |
//!
//! Phases, each with the same load:
//!
//! - the HTTP floor of `ingest.rs` (parses the body, stores nothing);
//! - (a) one node (an `App` with its log, served by `ingest::server`) on
//!   one server: the test suite's ClickHouse (`sql::testing`), database
//!   `t_bench_cluster_single`;
//! - (b) one node in cluster mode on two shards, entering through shard 1;
//! - (c) two nodes, node N entering through shard N, the connections split
//!   between them (connection `i` to node `i % 2`).
//!
//! The shards are two `clickhouse-server`s without ZooKeeper, started by
//! `scripts/cluster-demo shards start` under `target/bench-cluster` (HTTP
//! ports 28161 and 28162, native 29161 and 29162; database
//! `t_bench_cluster`, recreated at each run) with the `codestats` binary of
//! `target/release`, else of `target/debug`, and stopped at the end. Nodes
//! in cluster mode run, as `serve` does there, the live relay and the
//! watermark report; no node runs rollups or contends for the builder
//! lease.
//!
//! After each phase the bench waits until ClickHouse holds every pulse
//! acknowledged with 201, and exits non-zero unless it holds exactly 3
//! rows and one pulse's XP per 201 and the nodes counted what the clients
//! did. "Rows/s landed" is those rows over the time from the phase's first
//! request to the end of that wait. The load generator, the nodes, the
//! suite's ClickHouse and both shards share the machine's cores.

#[path = "common/load.rs"]
mod load;

use hyper::body::Bytes;
use ingest::{App, AppState, IngestConfig, server::RunningServer};
use load::{Load, TOKENS, XPS, drive, floor_router, machines, ms, percentile, pulse_body};
use sql::Db;
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SINGLE_DATABASE: &str = "bench_cluster_single";
const CLUSTER_DATABASE: &str = "t_bench_cluster";
/// (HTTP, native) ports of the shards.
const SHARD_PORTS: [(u16, u16); 2] = [(28161, 29161), (28162, 29162)];
/// The script's node ports, unused here (it checks that all six differ).
const NODE_PORTS: [u16; 2] = [28171, 28172];
/// Longest the wait for every acknowledged pulse to land may take.
const LAND_WITHIN: Duration = Duration::from_secs(180);

struct Settings {
    connections: usize,
    measured: Duration,
    warmup: Duration,
}

impl Settings {
    fn from_env() -> Self {
        let var = load::env_number;
        Self {
            connections: var("BENCH_CONNECTIONS", 256).max(1) as usize,
            measured: Duration::from_secs(var("BENCH_SECS", 10).max(1)),
            warmup: Duration::from_secs(var("BENCH_WARMUP_SECS", 3)),
        }
    }
}

fn main() -> ExitCode {
    let settings = Settings::from_env();
    load::run_main(run(&settings))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_owned()
}

/// The two shards of `scripts/cluster-demo`, stopped when dropped.
struct Shards {
    data: PathBuf,
    bin: PathBuf,
    /// The `export` lines of `shards start`.
    env: BTreeMap<String, String>,
}

impl Shards {
    fn script(data: &Path, bin: &Path, args: &[&str]) -> Result<std::process::Output, String> {
        let port = |p: u16| p.to_string();
        Command::new(repo().join("scripts/cluster-demo"))
            .args(args)
            .env("CLUSTER_DEMO_DATA", data)
            .env("CLUSTER_DEMO_BIN", bin)
            .env("CLUSTER_DEMO_SHARD1_HTTP_PORT", port(SHARD_PORTS[0].0))
            .env("CLUSTER_DEMO_SHARD1_TCP_PORT", port(SHARD_PORTS[0].1))
            .env("CLUSTER_DEMO_SHARD2_HTTP_PORT", port(SHARD_PORTS[1].0))
            .env("CLUSTER_DEMO_SHARD2_TCP_PORT", port(SHARD_PORTS[1].1))
            .env("CLUSTER_DEMO_NODE1_PORT", port(NODE_PORTS[0]))
            .env("CLUSTER_DEMO_NODE2_PORT", port(NODE_PORTS[1]))
            .output()
            .map_err(|e| format!("cannot run scripts/cluster-demo: {e}"))
    }

    fn start() -> Result<Self, String> {
        let target = target_dir();
        let bin = ["release", "debug"]
            .iter()
            .map(|profile| target.join(profile).join("codestats"))
            .find(|p| p.is_file())
            .ok_or("no codestats binary for the shards: cargo build --release --bin codestats")?;
        let data = target.join("bench-cluster");
        let mut shards = Self {
            data,
            bin,
            env: BTreeMap::new(),
        };
        let out = Self::script(&shards.data, &shards.bin, &["shards", "start"])?;
        if !out.status.success() {
            // Drops `shards`: stops whatever started.
            return Err(format!(
                "scripts/cluster-demo shards start: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line
                .trim()
                .strip_prefix("export ")
                .and_then(|r| r.split_once('='))
            {
                shards.env.insert(k.to_owned(), v.to_owned());
            }
        }
        for key in [
            "CODESTATS_CLICKHOUSE_USER",
            "CODESTATS_CLICKHOUSE_PASSWORD",
            "CODESTATS_CLICKHOUSE_CLUSTER",
            "CODESTATS_CLICKHOUSE_CLUSTER_URLS",
        ] {
            if !shards.env.contains_key(key) {
                return Err(format!("shards start printed no {key}"));
            }
        }
        Ok(shards)
    }

    fn urls(&self) -> Vec<String> {
        self.env["CODESTATS_CLICKHOUSE_CLUSTER_URLS"]
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    /// A handle on the bench's database at the server at `url`.
    fn server(&self, url: &str) -> Result<Db, String> {
        let config = sql::ClickHouseConfig {
            url: Some(url.to_owned()),
            user: self.env["CODESTATS_CLICKHOUSE_USER"].clone(),
            password: sql::secret::Secret::new(&self.env["CODESTATS_CLICKHOUSE_PASSWORD"]),
            database: CLUSTER_DATABASE.to_owned(),
            ..Default::default()
        };
        Db::new(url, &config).map_err(|e| e.to_string())
    }

    /// The bench's database in cluster mode, entering through `url`.
    async fn cluster(&self, url: &str) -> Result<Db, String> {
        self.server(url)?
            .with_cluster(&self.env["CODESTATS_CLICKHOUSE_CLUSTER"], &self.urls())
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        match Self::script(&self.data, &self.bin, &["shards", "stop"]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "scripts/cluster-demo shards stop: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("{e}"),
        }
    }
}

/// One node: an `App` and the server `serve` runs, its log in a
/// temporary directory.
struct Node {
    app: AppState,
    server: RunningServer,
    report: Option<tokio::task::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl Node {
    /// A node on `db`; in cluster mode with what `serve` runs there beside
    /// ingest (the live relay, the watermark report).
    async fn start(db: &Db) -> Result<Self, String> {
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let several = db.cluster().is_some();
        let mut config = IngestConfig::new(data.path());
        // A real plugin sends one pulse per ~10 s; here every connection
        // sends as fast as it is answered: on the path, never refusing.
        config.rate_per_minute = 100_000_000;
        config.rate_burst = 100_000;
        config.live_relay = several;
        let app = App::start(db.clone(), &config)
            .await
            .map_err(|e| e.to_string())?;
        let report = if several {
            let id = ingest::nodes::node_id(data.path()).map_err(|e| e.to_string())?;
            Some(ingest::nodes::report(
                db.clone(),
                id,
                app.shipper.watermark.clone(),
            ))
        } else {
            None
        };
        let server = RunningServer::start(
            ([127, 0, 0, 1], 0).into(),
            ingest::router(app.clone()),
            ingest::server::ServerLimits::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(Self {
            app,
            server,
            report,
            _data: data,
        })
    }

    async fn stop(self) {
        self.server.stop().await;
        if let Some(report) = self.report {
            report.abort();
        }
        self.app.shutdown().await;
    }
}

/// One line of the results.
struct Row {
    name: &'static str,
    load: Load,
    /// Rows/s from the first request to the last row in ClickHouse, and
    /// how long after the load stopped that last row landed.
    landed: Option<(f64, Duration)>,
    /// Rows the phase put on each shard.
    per_shard: Vec<u64>,
    /// Blocks the nodes shipped and their rows.
    blocks: (u64, u64),
}

async fn run(settings: &Settings) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let body = Bytes::from(pulse_body());

    let shards = Shards::start()?;
    let urls = shards.urls();
    for url in &urls {
        shards
            .server(url)?
            .drop_database()
            .await
            .map_err(|e| e.to_string())?;
    }
    let single = sql::testing::fresh_db(SINGLE_DATABASE).await;
    let entry = shards.cluster(&urls[0]).await?;
    sql::migrate::migrate(&entry)
        .await
        .map_err(|e| e.to_string())?;
    let single_version = single.version().await.map_err(|e| e.to_string())?;
    let shard_version = entry.version().await.map_err(|e| e.to_string())?;
    let single_tokens = machines(&single, TOKENS).await;
    let cluster_tokens = machines(&entry, TOKENS).await;

    println!();
    println!(
        "cluster: {} connections, {} xps per pulse over {TOKENS} tokens, {} s measured after {} s warm-up per phase; \
         ClickHouse {single_version} (one server) and {shard_version} (shards, cluster {}); \
         {cores} cores shared by the load generator, every node, the suite's ClickHouse and both shards; \
         load average before: {}",
        settings.connections,
        XPS.len(),
        settings.measured.as_secs(),
        settings.warmup.as_secs(),
        shards.env["CODESTATS_CLICKHOUSE_CLUSTER"],
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );

    let floor = RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        floor_router(),
        ingest::server::ServerLimits::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let floor_load = drive(
        &[floor.addr],
        &single_tokens,
        &body,
        settings.connections,
        settings.warmup,
        settings.measured,
    )
    .await?;
    floor.stop().await;
    let mut rows = vec![Row {
        name: "HTTP floor (parses, stores nothing)",
        load: floor_load,
        landed: None,
        per_shard: Vec::new(),
        blocks: (0, 0),
    }];
    progress(rows.last(), settings);

    let second = shards.cluster(&urls[1]).await?;
    let phases: [(&'static str, &[&Db], &[String]); 3] = [
        ("(a) one node, one server", &[&single], &single_tokens),
        ("(b) one node, two shards", &[&entry], &cluster_tokens),
        (
            "(c) two nodes, two shards",
            &[&entry, &second],
            &cluster_tokens,
        ),
    ];
    for (name, on, tokens) in phases {
        rows.push(phase(name, on, tokens, &body, settings).await?);
        progress(rows.last(), settings);
    }

    print_table(&rows, settings);
    drop(shards);
    Ok(())
}

/// Starts a node on each of `on`, measures them ([`measure`], counting the
/// rows through the first) and stops them.
async fn phase(
    name: &'static str,
    on: &[&Db],
    tokens: &[String],
    body: &Bytes,
    settings: &Settings,
) -> Result<Row, String> {
    let mut nodes = Vec::new();
    for node_db in on {
        nodes.push(Node::start(node_db).await?);
    }
    let row = measure(name, on[0], &nodes, tokens, body, settings).await;
    for node in nodes {
        node.stop().await;
    }
    row
}

/// Drives `nodes` with the load, waits until `db` holds every pulse they
/// acknowledged, and checks it.
async fn measure(
    name: &'static str,
    db: &Db,
    nodes: &[Node],
    tokens: &[String],
    body: &Bytes,
    settings: &Settings,
) -> Result<Row, String> {
    let before = stored(db).await?;
    let shards_before = per_shard(db).await?;
    let accepted = |nodes: &[Node]| -> u64 {
        nodes
            .iter()
            .map(|n| n.app.stats.accepted.load(Ordering::Relaxed))
            .sum()
    };
    let accepted_before = accepted(nodes);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.server.addr).collect();
    let started = Instant::now();
    let load = drive(
        &addrs,
        tokens,
        body,
        settings.connections,
        settings.warmup,
        settings.measured,
    )
    .await?;
    let load_ended = started.elapsed();
    tokio::time::timeout(
        LAND_WITHIN,
        futures::future::join_all(nodes.iter().map(|n| n.app.flush())),
    )
    .await
    .map_err(|_| format!("{name}: the shippers did not catch up within {LAND_WITHIN:?}"))?;
    let landed = started.elapsed();
    let after = stored(db).await?;
    let xp_per_pulse: u64 = XPS.iter().map(|(_, xp)| u64::from(*xp)).sum();
    let (rows, xp) = (after.0 - before.0, after.1 - before.1);
    if rows != XPS.len() as u64 * load.acked || xp != xp_per_pulse * load.acked {
        return Err(format!(
            "{name}: stored {rows} rows and {xp} xp, acknowledged {} pulses: expected {} rows and {} xp",
            load.acked,
            XPS.len() as u64 * load.acked,
            xp_per_pulse * load.acked
        ));
    }
    let counted = accepted(nodes) - accepted_before;
    if counted != load.acked {
        return Err(format!(
            "{name}: the nodes counted {counted} accepted pulses, the clients {}",
            load.acked
        ));
    }
    let per_shard = per_shard(db)
        .await?
        .iter()
        .zip(&shards_before)
        .map(|(a, b)| a - b)
        .collect();
    let blocks = nodes.iter().fold((0, 0), |(b, r), n| {
        let s = &n.app.shipper.stats;
        (
            b + s.blocks.load(Ordering::Relaxed),
            r + s.rows.load(Ordering::Relaxed),
        )
    });
    Ok(Row {
        name,
        landed: Some((
            rows as f64 / landed.as_secs_f64(),
            landed.saturating_sub(load_ended),
        )),
        load,
        per_shard,
        blocks,
    })
}

/// `(rows, xp)` of `pulses`, through the Distributed table in cluster mode.
async fn stored(db: &Db) -> Result<(u64, u64), String> {
    db.client()
        .query("SELECT count(), sum(xp) FROM pulses")
        .fetch_one()
        .await
        .map_err(|e| e.to_string())
}

/// Rows of `pulses` on each shard (one: the server).
async fn per_shard(db: &Db) -> Result<Vec<u64>, String> {
    let mut rows = Vec::new();
    for shard in db.shards() {
        let n: u64 = shard
            .client()
            .query(&format!("SELECT count() FROM {}", shard.table("pulses")))
            .fetch_one()
            .await
            .map_err(|e| e.to_string())?;
        rows.push(n);
    }
    Ok(rows)
}

fn progress(row: Option<&Row>, settings: &Settings) {
    if let Some(row) = row {
        eprintln!(
            "  {}: {:.0} pulses/s, {} acknowledged, other answers: {}",
            row.name,
            row.load.per_sec(settings.measured),
            row.load.acked,
            row.load.other_answers()
        );
    }
}

/// `1234567.8` as `1,234,568`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(rows: &[Row], settings: &Settings) {
    let baseline = rows.iter().find(|r| r.name.starts_with("(a)")).map(|r| {
        (
            r.load.per_sec(settings.measured),
            r.landed.map_or(0.0, |l| l.0),
        )
    });
    let (base_pulses, base_rows) = baseline.unwrap_or((0.0, 0.0));
    let ratio = |x: f64, base: f64| {
        if base > 0.0 {
            format!("{:.2}", x / base)
        } else {
            "—".to_owned()
        }
    };
    println!();
    println!(
        "| phase | pulses/s acknowledged (201) | × (a) | p50 / p99 | rows/s landed | × (a) | last row after the load | rows per shard | blocks, rows per block | machine busy | bench process | other answers |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        let pulses = row.load.per_sec(settings.measured);
        let latencies = row.load.latencies();
        let (landed, after, landed_ratio) = match row.landed {
            Some((rate, after)) => (
                thousands(rate),
                format!("{:.1} s", after.as_secs_f64()),
                ratio(rate, base_rows),
            ),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let per_shard = if row.per_shard.len() > 1 {
            row.per_shard
                .iter()
                .map(|n| thousands(*n as f64))
                .collect::<Vec<_>>()
                .join(" / ")
        } else {
            "—".to_owned()
        };
        let blocks = if row.blocks.0 > 0 {
            format!(
                "{}, {}",
                row.blocks.0,
                thousands(row.blocks.1 as f64 / row.blocks.0 as f64)
            )
        } else {
            "—".to_owned()
        };
        println!(
            "| {} | {} | {} | {} / {} ms | {landed} | {landed_ratio} | {after} | {per_shard} | {blocks} | {:.0} % | {:.2} cores | {} |",
            row.name,
            thousands(pulses),
            ratio(pulses, base_pulses),
            ms(percentile(&latencies, 0.50)),
            ms(percentile(&latencies, 0.99)),
            row.load.cpu.machine_busy * 100.0,
            row.load.cpu.process_cores,
            row.load.other_answers(),
        );
    }
    println!();
    println!(
        "{} cores shared by everything above: the load generator and the nodes (one process), \
         the suite's ClickHouse and both shards. Stored rows = 3 × acknowledged pulses after every phase.",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
