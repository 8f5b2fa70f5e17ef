//! `codestats import`: history from other services into one user's
//! account — a WakaTime data export or a Wakapi heartbeat export (into
//! `heartbeats`), or a Code::Stats pulse CSV export (into `pulses`).
//!
//! Files of any size: a reader thread parses the file as a stream
//! (`json.rs`, `csv.rs`) and hands rows over in chunks of [`CHUNK_ROWS`]
//! through a channel of [`CHUNKS_IN_FLIGHT`], so memory holds a few chunks
//! whatever the file's size.
//!
//! Idempotent: a row's id is derived from what it says (as ingest derives
//! heartbeat ids), and each chunk first asks ClickHouse which of its ids
//! are stored; only the others are written. A second import of the same
//! file writes nothing. A chunk of pulses writes its `xp_hourly` rows first,
//! under a marker named after the chunk's new rows, then the pulses: an
//! import stopped between the two finds the marker and writes only the
//! pulses when run again, so XP is never counted twice or lost.

mod csv;
pub mod json;

use crate::{
    languages::Languages,
    wakatime::{
        heartbeat::{self, Origin, Verdict},
        user_agent,
    },
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sql::{Db, accounts::User, heartbeats::HeartbeatRow, pulses::PulseRow};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::sync::mpsc;

/// Rows per chunk: one "which are stored" query and one INSERT each.
pub const CHUNK_ROWS: usize = 5_000;
/// Chunks parsed ahead of the writer.
pub const CHUNKS_IN_FLIGHT: usize = 2;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// WakaTime's data export (JSON, heartbeats by day).
    Wakatime,
    /// Wakapi's heartbeat export (a JSON list of heartbeats).
    Wakapi,
    /// Code::Stats' pulse export (CSV: sent_at, sent_at_local, tz_offset,
    /// language, machine, amount).
    CodeStats,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "wakatime" => Ok(Format::Wakatime),
            "wakapi" => Ok(Format::Wakapi),
            "code-stats" | "codestats" => Ok(Format::CodeStats),
            other => Err(format!(
                "unknown format {other:?}: wakatime, wakapi or code-stats"
            )),
        }
    }
}

/// Where the rows go and how they are labelled.
#[derive(Debug, Clone)]
pub struct Options {
    pub user: User,
    /// Heartbeats: the machine label when the file names none.
    pub machine: String,
    /// Keep heartbeats' entities in clear (`CODESTATS_STORE_ENTITIES`).
    pub store_entities: bool,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub read: u64,
    pub imported: u64,
    /// Already stored (an earlier import, or twice in the file).
    pub duplicate: u64,
    /// Refused, by reason.
    pub rejected: BTreeMap<String, u64>,
}

impl Report {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error(transparent)]
    Store(#[from] sql::Error),
}

/// A chunk of parsed rows, with the rejections met while parsing it.
enum Chunk {
    Heartbeats(Vec<HeartbeatRow>),
    Pulses(Vec<PulseRow>, Vec<String>),
}

struct Parsed {
    chunk: Chunk,
    read: u64,
    rejected: BTreeMap<String, u64>,
}

/// Imports `path` as `format`; `progress` counts the bytes read so far.
pub async fn import(
    db: &Db,
    path: &Path,
    format: Format,
    options: &Options,
    progress: Arc<AtomicU64>,
) -> Result<Report, ImportError> {
    let file = std::fs::File::open(path).map_err(|source| ImportError::Open {
        path: path.display().to_string(),
        source,
    })?;
    let reader = Counting {
        inner: std::io::BufReader::with_capacity(1 << 20, file),
        read: progress,
    };
    let (tx, mut rx) = mpsc::channel::<Parsed>(CHUNKS_IN_FLIGHT);
    let now_ms = crate::ship::now_millis();
    let parse_options = options.clone();
    let parser = tokio::task::spawn_blocking(move || match format {
        Format::Wakatime | Format::Wakapi => parse_heartbeats(reader, &parse_options, now_ms, &tx),
        Format::CodeStats => csv::parse(reader, &tx),
    });

    let mut writer = Writer::new(db, options).await?;
    let mut report = Report::default();
    while let Some(parsed) = rx.recv().await {
        report.read += parsed.read;
        for (reason, n) in parsed.rejected {
            *report.rejected.entry(reason).or_default() += n;
        }
        match parsed.chunk {
            Chunk::Heartbeats(rows) => writer.heartbeats(rows, &mut report).await?,
            Chunk::Pulses(rows, machines) => writer.pulses(rows, machines, &mut report).await?,
        }
    }
    match parser.await {
        Ok(Ok(())) => Ok(report),
        Ok(Err(e)) => Err(ImportError::Parse(e)),
        Err(e) => Err(ImportError::Parse(format!("the reader stopped: {e}"))),
    }
}

/// Counts bytes as they are read.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn parse_heartbeats(
    reader: impl std::io::Read,
    options: &Options,
    now_ms: u64,
    tx: &mpsc::Sender<Parsed>,
) -> Result<(), String> {
    let mut rows = Vec::with_capacity(CHUNK_ROWS);
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let mut read = 0u64;
    let send =
        |rows: &mut Vec<HeartbeatRow>, rejected: &mut BTreeMap<String, u64>, read: &mut u64| {
            let parsed = Parsed {
                chunk: Chunk::Heartbeats(std::mem::take(rows)),
                read: std::mem::take(read),
                rejected: std::mem::take(rejected),
            };
            tx.blocking_send(parsed).is_ok()
        };
    let result = json::for_each_heartbeat(reader, &mut |item| {
        read += 1;
        match heartbeat_row(item, options, now_ms) {
            Ok(row) => rows.push(row),
            Err(reason) => *rejected.entry(reason.to_owned()).or_default() += 1,
        }
        if rows.len() >= CHUNK_ROWS && !send(&mut rows, &mut rejected, &mut read) {
            return json::Flow::Break(());
        }
        json::Flow::Continue(())
    });
    result.map_err(|e| format!("not a WakaTime or Wakapi export: {e}"))?;
    send(&mut rows, &mut rejected, &mut read);
    Ok(())
}

/// A heartbeat of an export as a row (language as written; the writer
/// makes it canonical).
fn heartbeat_row(
    item: Value,
    options: &Options,
    now_ms: u64,
) -> Result<HeartbeatRow, &'static str> {
    let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    let user_agent = text("user_agent");
    let editor = text("editor")
        .filter(|e| !e.is_empty())
        .map(|e| user_agent::pretty(&e));
    let os = text("operating_system").filter(|o| !o.is_empty());
    let machine = text("machine").filter(|m| !m.is_empty());
    let checked = match heartbeat::check_with(item, now_ms, None) {
        Verdict::Keep(checked) => checked,
        Verdict::TooOld => return Err("too old"),
        Verdict::Invalid(reason) => return Err(reason),
    };
    let client = user_agent::parse(user_agent.as_deref().unwrap_or_default());
    Ok(checked.into_row(Origin {
        user_id: options.user.user_id,
        machine_id: 0,
        editor: editor.unwrap_or(client.editor),
        os: os.unwrap_or(client.os),
        machine: machine.as_deref().unwrap_or(&options.machine),
        utc_offset: 0,
        store_entity: options.store_entities,
    }))
}

/// Writes chunks: canonical languages, the rows not stored yet.
struct Writer<'a> {
    db: &'a Db,
    user: &'a User,
    languages: Languages,
    /// The user's machines by name (pulses).
    machines: HashMap<String, u64>,
    received_at: u32,
    /// Where the rows are inserted: the store, or the user's shard.
    target: Db,
}

impl<'a> Writer<'a> {
    async fn new(db: &'a Db, options: &'a Options) -> Result<Self, ImportError> {
        let languages = Languages::default();
        languages.load(db).await?;
        let machines = sql::accounts::machines::of_user(db, options.user.user_id)
            .await?
            .into_iter()
            .map(|m| (m.name, m.machine_id))
            .collect();
        // One user's rows: in cluster mode, straight into their shard, as
        // the shipper writes (`sql::cluster`).
        let target = db.shards().swap_remove(db.shard_of(options.user.user_id));
        Ok(Self {
            db,
            target,
            user: &options.user,
            languages,
            machines,
            received_at: crate::ship::now_secs(),
        })
    }

    /// Canonical spellings, the new ones stored.
    async fn canonical(&self, names: impl Iterator<Item = &mut String>) -> sql::Result<()> {
        let mut new = Vec::new();
        for name in names {
            let (canonical, row) = self.languages.canonical(name, self.received_at).await;
            new.extend(row);
            *name = canonical.to_string();
        }
        sql::languages::insert(self.db, &new).await
    }

    async fn heartbeats(
        &mut self,
        mut rows: Vec<HeartbeatRow>,
        report: &mut Report,
    ) -> Result<(), ImportError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.canonical(rows.iter_mut().map(|r| &mut r.language))
            .await?;
        for row in &mut rows {
            // The id covers the canonical language, as ingest's does.
            row.heartbeat_id = sql::heartbeats::heartbeat_id(row);
        }
        let ids: Vec<u64> = rows.iter().map(|r| r.heartbeat_id).collect();
        let (from, to) = span(rows.iter().map(|r| r.time));
        let stored =
            sql::import::stored_heartbeats(self.db, self.user.user_id, from, to, &ids).await?;
        let rows = unstored(rows, stored, |r| r.heartbeat_id, report);
        if rows.is_empty() {
            return Ok(());
        }
        let block_id = chunk_id(rows.iter().map(|r| r.heartbeat_id));
        let rows = sql::blocks::stamp(rows, block_id, self.received_at);
        sql::heartbeats::insert(&self.target, block_id, &rows).await?;
        report.imported += rows.len() as u64;
        Ok(())
    }

    async fn pulses(
        &mut self,
        mut rows: Vec<PulseRow>,
        machine_names: Vec<String>,
        report: &mut Report,
    ) -> Result<(), ImportError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.canonical(rows.iter_mut().map(|r| &mut r.language))
            .await?;
        for (row, machine) in rows.iter_mut().zip(&machine_names) {
            row.user_id = self.user.user_id;
            row.machine_id = self.machine_id(machine).await?;
            row.pulse_id = pulse_id(row);
        }
        let ids: Vec<u64> = rows.iter().map(|r| r.pulse_id).collect();
        let (from, to) = span(rows.iter().map(|r| r.coded_at));
        let stored = sql::import::stored_pulses(self.db, self.user.user_id, from, to, &ids).await?;
        let rows = unstored(rows, stored, |r| r.pulse_id, report);
        if rows.is_empty() {
            return Ok(());
        }
        let block_id = chunk_id(rows.iter().map(|r| r.pulse_id));
        let rows = sql::blocks::stamp(rows, block_id, self.received_at);
        // Aggregates first, under the chunk's marker; then the pulses.
        if !sql::import::xp_marker_landed(self.db, block_id).await? {
            sql::blocks::insert_xp(&self.target, block_id, self.received_at, &rows).await?;
        }
        sql::blocks::insert_pulses(&self.target, block_id, &rows).await?;
        report.imported += rows.len() as u64;
        Ok(())
    }

    /// The user's machine of that name; a name they do not have becomes a
    /// machine of theirs, inactive (its token was never shown).
    async fn machine_id(&mut self, name: &str) -> Result<u64, ImportError> {
        if let Some(id) = self.machines.get(name) {
            return Ok(*id);
        }
        let (machine, _token) = sql::accounts::machines::add(self.db, self.user, name).await?;
        let machine = sql::accounts::machines::set_active(self.db, machine, false).await?;
        self.machines.insert(name.to_owned(), machine.machine_id);
        Ok(machine.machine_id)
    }
}

/// The rows whose id is not stored, each once; the others count as
/// duplicates.
fn unstored<T>(
    rows: Vec<T>,
    stored: Vec<u64>,
    id: impl Fn(&T) -> u64,
    report: &mut Report,
) -> Vec<T> {
    let mut seen: HashSet<u64> = stored.into_iter().collect();
    let total = rows.len() as u64;
    let new: Vec<T> = rows.into_iter().filter(|r| seen.insert(id(r))).collect();
    report.duplicate += total - new.len() as u64;
    new
}

/// The first and last of some times.
fn span(times: impl Iterator<Item = u32>) -> (u32, u32) {
    times.fold((u32::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)))
}

/// A chunk's id: a hash of its rows' ids, so the same rows get the same id
/// when an interrupted import runs again.
fn chunk_id(ids: impl Iterator<Item = u64>) -> u64 {
    let mut hasher = Sha256::new();
    for id in ids {
        hasher.update(id.to_le_bytes());
    }
    u64::from_le_bytes(hasher.finalize()[..8].try_into().unwrap_or_default())
}

/// An imported pulse row's id: what it says (user, time, offset, machine,
/// language, XP), so the same row imported again has the same id.
fn pulse_id(row: &PulseRow) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(b"import");
    hasher.update(row.user_id.to_le_bytes());
    hasher.update(row.coded_at.to_le_bytes());
    hasher.update(row.utc_offset.to_le_bytes());
    hasher.update(row.machine_id.to_le_bytes());
    hasher.update(row.xp.to_le_bytes());
    hasher.update(row.language.as_bytes());
    u64::from_le_bytes(hasher.finalize()[..8].try_into().unwrap_or_default())
}
