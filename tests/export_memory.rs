//! The pulse export of `codestats serve` is streamed: for a user with two
//! million pulses, the server's resident memory stays flat while it sends
//! `/my/pulses.csv` and `/my/pulses.parquet`.
//!
//! Memory is `VmRSS` of the serve process, sampled every 20 ms on a thread
//! while the body is read chunk by chunk. Serve's allocator (mimalloc)
//! returns freed pages at once (`MIMALLOC_PURGE_DELAY=0`), so its RSS
//! follows the memory in use rather than what earlier work freed. Each
//! export is first taken with the first 200,000 pulses alone, so that
//! one-time costs (the Parquet writer's thread pool, code paged in) are not
//! counted; then, with all 2,000,000 pulses, each download may grow serve's
//! memory by less than [`MAX_GROWTH`] from just before it.
//!
//! The bound tells a streamed export from one that holds everything at
//! once, which costs at least the whole CSV body (187.1 MiB here), or for
//! Parquet every row as one frame before the file is written (136.7 MiB
//! here, measured from the parsed download; the Parquet body itself is
//! only 7.5 MiB, so it is no yardstick). Both are checked to be at least
//! twice [`MAX_GROWTH`], and more than it plus what serve kept from the
//! earlier downloads (18–35 MiB), which a buffered export could reuse.
//!
//! Measured on a debug build with 2 cores: the streamed CSV grows serve by
//! 0–12 MiB (64 KiB chunks); the Parquet export by 28–39 MiB (a few row
//! groups of 64k rows in flight, and the writer's buffers), 38–51 MiB for
//! the first one of the process, with 200,000 pulses: not growing with the
//! history. With mimalloc's default purge delay the Parquet export's
//! growth varies between 45 and 75 MiB, as freed pages are kept a while.

mod common;

use common::Serve;
use polars::prelude::{DataFrame, ParquetReader, SerReader};
use reqwest::{StatusCode, redirect::Policy};
use sql::pulses::PulseRow;
use std::{
    io::Cursor,
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Pulse rows of the user.
const ROWS: u32 = 2_000_000;
/// Rows per insert; the first insert is exported alone, before the rest.
const INSERT_ROWS: u32 = 200_000;
/// How much serve's resident memory may grow during one download.
const MAX_GROWTH: u64 = 56 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;
const PASSWORD: &str = "streamed all the way";
/// Code::Stats' language names, most of them longer than the 12 bytes a
/// string column keeps inline.
const LANGUAGES: &[&str] = &[
    "Rust",
    "TypeScript React",
    "JavaScript React",
    "Python",
    "Jupyter Notebook",
    "Git Commit Message",
    "Protocol Buffers",
    "Visual Basic .NET",
    "Markdown",
    "Shell Script (Bash)",
    "Objective-C++",
    "Elixir (EEx templates)",
    "Go Module File",
    "Plain text",
    "Emacs Lisp",
];
const OFFSETS: &[i16] = &[0, 60, 120, -300, 330, -480, 545];

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// Resident memory of a process, in bytes (`VmRSS` of `/proc/PID/status`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("serve is running");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    kb * 1024
}

/// The peak resident memory of a process, sampled every 20 ms on a thread
/// of its own.
struct RssWatch {
    pid: u32,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(rss(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak, stop) = (peak.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self {
            pid,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The memory now, from which the peak is counted again.
    fn restart(&self) -> u64 {
        let now = rss(self.pid);
        self.peak.store(now, Ordering::Relaxed);
        now
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed).max(rss(self.pid))
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One download and serve's memory around it.
struct Measured {
    body_bytes: u64,
    before: u64,
    peak: u64,
}

impl Measured {
    fn growth(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }

    /// Fails unless serve grew by less than [`MAX_GROWTH`] during this
    /// download, and unless that bound tells a streamed export from one
    /// that holds `held` bytes at once: `held` is at least twice the bound,
    /// and more than the bound plus what serve had gained since `idle` (a
    /// buffered export could reuse memory kept from earlier downloads).
    fn assert_streamed(&self, what: &str, held: u64, idle: u64) {
        let kept = self.before.saturating_sub(idle);
        eprintln!(
            "{what}: a buffered export holds at least {:.1} MiB; serve kept {:.1} MiB from earlier downloads",
            mib(held),
            mib(kept)
        );
        assert!(
            held >= 2 * MAX_GROWTH && held > MAX_GROWTH + kept,
            "{what}: {:.1} MiB at once is too little for the bound to tell",
            mib(held)
        );
        assert!(
            self.growth() < MAX_GROWTH,
            "serve grew by {:.1} MiB sending {what} ({:.1} MiB): not streamed",
            mib(self.growth()),
            mib(self.body_bytes)
        );
    }
}

/// Downloads `path` chunk by chunk, giving each chunk to `take`, while
/// `watch` follows serve's memory; prints what it measured.
async fn download(
    client: &reqwest::Client,
    serve: &Serve,
    path: &str,
    watch: &RssWatch,
    mut take: impl FnMut(&[u8]),
) -> Measured {
    let started = Instant::now();
    let before = watch.restart();
    let mut response = client.get(serve.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body_bytes = 0u64;
    while let Some(chunk) = response.chunk().await.unwrap() {
        body_bytes += chunk.len() as u64;
        take(&chunk);
    }
    let measured = Measured {
        body_bytes,
        before,
        peak: watch.peak(),
    };
    eprintln!(
        "{path}: body {body_bytes} bytes ({:.1} MiB) in {:.1} s; serve RSS before {:.1} MiB, peak {:.1} MiB, growth {:.1} MiB",
        mib(body_bytes),
        started.elapsed().as_secs_f64(),
        mib(measured.before),
        mib(measured.peak),
        mib(measured.growth()),
    );
    measured
}

/// Counts the lines of a CSV body given in chunks and sums its last column.
#[derive(Default)]
struct CsvTally {
    partial: Vec<u8>,
    lines: u64,
    header: Option<String>,
    xp: u64,
}

impl CsvTally {
    fn take(&mut self, chunk: &[u8]) {
        self.partial.extend_from_slice(chunk);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for line in self.partial[..end].split(|&b| b == b'\n') {
            let line = std::str::from_utf8(line).expect("UTF-8");
            self.lines += 1;
            if self.header.is_none() {
                self.header = Some(line.to_owned());
                continue;
            }
            let amount = line.rsplit(',').next().unwrap();
            self.xp += amount
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("amount of {line:?}"));
        }
        self.partial.drain(..=end);
    }
}

/// `/my/pulses.csv`, checked to hold a header and `rows` rows of `xp` XP.
async fn csv_export(
    client: &reqwest::Client,
    serve: &Serve,
    watch: &RssWatch,
    rows: u32,
    xp: u64,
) -> Measured {
    let mut csv = CsvTally::default();
    let measured = download(client, serve, "/my/pulses.csv", watch, |c| csv.take(c)).await;
    assert!(csv.partial.is_empty(), "the CSV ends with a line break");
    assert_eq!(
        csv.header.as_deref(),
        Some("sent_at,sent_at_local,tz_offset,language,machine,amount")
    );
    assert_eq!(csv.lines, u64::from(rows) + 1);
    assert_eq!(csv.xp, xp);
    measured
}

/// `/my/pulses.parquet`, checked to hold `rows` rows of `xp` XP in more
/// than one row group; with the rows as one frame.
async fn parquet_export(
    client: &reqwest::Client,
    serve: &Serve,
    watch: &RssWatch,
    rows: u32,
    xp: u64,
) -> (Measured, DataFrame) {
    let mut body = Vec::new();
    let measured = download(client, serve, "/my/pulses.parquet", watch, |c| {
        body.extend_from_slice(c)
    })
    .await;
    let mut reader = ParquetReader::new(Cursor::new(body));
    let groups = reader.get_metadata().unwrap().row_groups.len();
    let frame = reader.finish().unwrap();
    eprintln!(
        "/my/pulses.parquet: {groups} row groups; all rows as one frame: {:.1} MiB",
        mib(frame.estimated_size() as u64)
    );
    assert_eq!(frame.height() as u64, u64::from(rows));
    assert!(groups > 1, "one row group: the file was written at once");
    let amount = frame.column("amount").unwrap().u32().unwrap();
    assert_eq!(
        amount.iter().map(|v| u64::from(v.unwrap())).sum::<u64>(),
        xp
    );
    (measured, frame)
}

/// The `_csrf` of the first form on a page.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a form") + 20;
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

/// Signs `username` up over HTTP and adds a machine on the machines page;
/// returns the signed-in client.
async fn sign_up(serve: &Serve, username: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let page = client.get(serve.url("/signup")).send().await.unwrap();
    let form = csrf(&page.text().await.unwrap());
    let signed_up = client
        .post(serve.url("/signup"))
        .form(&[
            ("_csrf", form.as_str()),
            ("username", username),
            ("email", &format!("{username}@example.com")),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), StatusCode::SEE_OTHER);
    let page = client.get(serve.url("/my/machines")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let form = csrf(&page.text().await.unwrap());
    let added = client
        .post(serve.url("/my/machines"))
        .form(&[
            ("_csrf", form.as_str()),
            ("name", "laptop at the office on the third floor"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::OK);
    assert!(added.text().await.unwrap().contains("data-token"));
    client
}

/// A user's id and the ids of their three machines (two more added here;
/// like the languages, their names are longer than what a string column
/// keeps inline).
async fn user_and_machines(db: &sql::Db, username: &str) -> (u64, Vec<u64>) {
    for name in [
        "desktop at home in the study",
        "build box in the basement, rack two",
    ] {
        sql::accounts::add_machine(db, username, name)
            .await
            .unwrap();
    }
    let user = sql::accounts::get_user(db, username).await.unwrap();
    let machines: Vec<u64> = sql::accounts::list_machines(db, &user)
        .await
        .unwrap()
        .iter()
        .map(|m| m.machine_id)
        .collect();
    assert_eq!(machines.len(), 3);
    (user.user_id, machines)
}

/// Inserts pulses number `range` of the user, [`INSERT_ROWS`] at a time,
/// varied in language, machine and offset; returns their XP.
async fn insert_pulses(db: &sql::Db, user_id: u64, machines: &[u64], range: Range<u32>) -> u64 {
    let start = 1_700_000_000u32;
    let mut xp = 0u64;
    for first in range.clone().step_by(INSERT_ROWS as usize) {
        let rows: Vec<PulseRow> = (first..(first + INSERT_ROWS).min(range.end))
            .map(|i| {
                let coded_at = start + i * 20;
                let row = PulseRow {
                    pulse_id: u64::from(i) + 1,
                    batch_id: u64::from(first / INSERT_ROWS) + 1,
                    user_id,
                    machine_id: machines[(i / 3) as usize % machines.len()],
                    coded_at,
                    utc_offset: OFFSETS[(i / 1000) as usize % OFFSETS.len()],
                    language: LANGUAGES[(i * 7 + i / 100) as usize % LANGUAGES.len()].into(),
                    xp: i % 97 + 1,
                    received_at: coded_at,
                };
                xp += u64::from(row.xp);
                row
            })
            .collect();
        sql::blocks::insert_unshipped(db, &rows).await.unwrap();
    }
    xp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_of_two_million_pulses_are_streamed() {
    let db = sql::test_db!();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        db.database(),
        data.path(),
        &[
            ("CODESTATS_REGISTRATION", "open"),
            // No rollup rebuilding pages in the same process meanwhile.
            ("CODESTATS_ROLLUP_INTERVAL_SECS", "3600"),
            // Freed pages leave RSS at once (see above).
            ("MIMALLOC_PURGE_DELAY", "0"),
        ],
    )
    .await;
    serve.wait_for("/signup", |_| true).await;
    let client = sign_up(&serve, "millie").await;
    let (user_id, machines) = user_and_machines(&db, "millie").await;
    let watch = RssWatch::start(serve.pid());
    let idle = rss(serve.pid());

    // The first pulses alone: the exports' one-time costs are not counted
    // below. Their numbers are printed, for comparison.
    let mut xp = insert_pulses(&db, user_id, &machines, 0..INSERT_ROWS).await;
    csv_export(&client, &serve, &watch, INSERT_ROWS, xp).await;
    parquet_export(&client, &serve, &watch, INSERT_ROWS, xp).await;

    let started = Instant::now();
    xp += insert_pulses(&db, user_id, &machines, INSERT_ROWS..ROWS).await;
    eprintln!(
        "inserted the other {} pulses in {:.1} s",
        ROWS - INSERT_ROWS,
        started.elapsed().as_secs_f64()
    );

    let csv = csv_export(&client, &serve, &watch, ROWS, xp).await;
    csv.assert_streamed("the CSV", csv.body_bytes, idle);

    let (parquet, frame) = parquet_export(&client, &serve, &watch, ROWS, xp).await;
    let frame_bytes = frame.estimated_size() as u64;
    drop(frame);
    parquet.assert_streamed("the Parquet file", frame_bytes, idle);
}
