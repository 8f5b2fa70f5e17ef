//! Backups: a dump of every table of the store into plain files, and a
//! restore of such a dump into an empty store.
//!
//! A dump is a directory (`layout.rs`): `manifest.json` (`manifest.rs`:
//! versions, the cut, and per table its columns, rows, size and SHA-256)
//! and one `TABLE.native.gz` per table, the rows in ClickHouse's `Native`
//! format, gzip'd. Native is binary and typed (a `DateTime` is its
//! seconds, no time zone in between), and reads the same on 18.16 and
//! current releases. Both directions stream: `dump.rs` pipes a `SELECT`'s
//! answer through gzip into the file, `restore.rs` pipes the file into an
//! `INSERT … FORMAT Native`; neither holds more than a few chunks of a
//! table in memory. `native.rs` walks the blocks as they pass, so a dump's
//! row counts are the rows its files hold, and `pipe.rs` joins the async
//! HTTP side to the blocking file side.
//!
//! Which tables: every table of the database but `schema_migrations` (a
//! restore runs on a migrated store) and views. The log-fed tables first
//! (`pulses`, `xp_hourly`, `heartbeats`), then the others by name, so the
//! accounts are read after the data: a user or machine deleted while the
//! dump runs (marks first, rows after) has its deletion mark in the dump,
//! and housekeeping finishes the deletion after a restore.
//!
//! # What "consistent" means
//!
//! ClickHouse has no snapshot across tables (or across one table's
//! parts), so a dump is cut by time instead. The caller picks a *cut*: a
//! time before which every block of the ingest log is settled — for the
//! node whose `shipper.json` it reads, the `received_at` of the block in
//! flight, or the clock less a margin (`codestats backup` does this, and
//! dumps again when a block from before the cut turned out to be in flight
//! meanwhile). Then:
//!
//! - `pulses` holds exactly the rows received before the cut: whole
//!   blocks, each one part, written once by the shipper. Rows received
//!   later are left for the next dump.
//! - `xp_hourly` is the sums of exactly those pulses. Its rows carry only
//!   the month they were received in, not the time, so they cannot be cut
//!   directly: the months before the cut's month are dumped as stored
//!   (`FINAL`: summed), and the cut's month is summed again from the
//!   pulses before the cut, with the markers of those pulses' blocks (the
//!   shipper's and imports'). A restored store's `xp_hourly` therefore
//!   agrees with its `pulses` to the row.
//! - `heartbeats` holds the heartbeats whose latest copy was received
//!   before the cut (`FINAL`, then the cut): a copy received after the cut
//!   has replaced the earlier one in ClickHouse already, or will, so the
//!   heartbeat is in the next dump instead.
//! - The other tables (accounts, sessions, claims, languages) are read as
//!   they are when their turn comes, with `FINAL` where the engine merges
//!   rows (`ReplacingMergeTree`, `SummingMergeTree`, …), so a restored
//!   table holds each row once and no merge shrinks it after the restore.
//!
//! Its limits: the cut covers the one node whose data dir the backup
//! reads. Another node's log is not visible, so a block another node has
//! in flight (normally under a second; longer while its ClickHouse writes
//! fail) may be missing from the dump though later ones are in it — the
//! clock margin covers a normal block, nothing covers a stalled one. An
//! import running during a backup is in the dump in part (each of its
//! chunks whole or absent); run it again after a restore, imports are
//! idempotent. The accounts are read some seconds after the data, so a
//! user made meanwhile is in the dump without any pulses, which is a state
//! the store was in; a clock stepped back on the node can hide a block
//! from the cut.
//!
//! A restore (`restore.rs`) refuses a dump whose manifest or files do not
//! match (SHA-256 and size of every file, checked before anything is
//! inserted), a dump of a newer schema than this binary's migrations, and
//! a store that holds any row. A dump of an older schema restores into a
//! newer one: each table's INSERT names the dump's columns, and columns
//! added since get their defaults (a migration that changes what a column
//! means must say how an older dump restores).

mod dump;
mod layout;
mod manifest;
mod native;
mod pipe;
mod restore;

pub use dump::{DumpOptions, dump};
pub use layout::{BackupLock, DUMP_PREFIX, LOCK_FILE, dump_name, is_dump_name};
pub use manifest::{ColumnEntry, MANIFEST_FILE, Manifest, TableEntry, table_file};
pub use restore::restore;

use crate::{db::Db, error::Result, migrate::MIGRATIONS};
use clickhouse::Row;
use serde::Deserialize;
use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

/// The layout of dumps this code writes and reads.
pub const FORMAT: u32 = 1;
/// The migrations' own table: never dumped, a restore migrates.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";
/// Tables whose rows carry the `received_at` of the block that wrote
/// them: dumped `WHERE received_at < cut`.
pub const LOG_FED: [&str; 2] = ["pulses", "heartbeats"];
/// Summed from `pulses` for the cut's month (see above).
pub const XP_HOURLY: &str = "xp_hourly";
/// Dumped first, in this order: the ingest log's tables.
const FIRST: [&str; 3] = ["pulses", XP_HOURLY, "heartbeats"];
/// Engines whose merges fold rows together: dumped with `FINAL`.
const MERGING_ENGINES: [&str; 6] = [
    "ReplacingMergeTree",
    "SummingMergeTree",
    "AggregatingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
    "GraphiteMergeTree",
];

/// How far a dump or restore is, for a progress bar: rows done of a total
/// (for a dump, the stored rows: an estimate), and the step under way.
#[derive(Debug, Default)]
pub struct Progress {
    rows: AtomicU64,
    total: AtomicU64,
    step: Mutex<String>,
}

impl Progress {
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// What is being done: a table's name, or a phase.
    pub fn step(&self) -> String {
        self.step.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn start(&self, total: u64) {
        self.rows.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    pub(crate) fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_step(&self, step: impl Into<String>) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = step.into();
    }
}

/// A table of the store as the system tables describe it.
#[derive(Debug, Clone)]
pub(crate) struct TableInfo {
    pub name: String,
    pub engine: String,
    /// Those a `SELECT *` gives and an INSERT takes, in the table's order.
    pub columns: Vec<ColumnEntry>,
}

impl TableInfo {
    /// Whether merges fold this table's rows together.
    pub fn merges_rows(&self) -> bool {
        // `Replicated…` variants end the same way.
        MERGING_ENGINES.iter().any(|e| self.engine.ends_with(e))
    }
}

#[derive(Row, Deserialize)]
struct TableRow {
    name: String,
    engine: String,
}

#[derive(Row, Deserialize)]
struct ColumnRow {
    table: String,
    name: String,
    #[serde(rename = "type")]
    data_type: String,
}

/// Tables of the running nodes' state, left out of dumps: the live relay's
/// last minutes and the nodes' watermarks mean nothing after a restore
/// (the relay reads only seconds back; nodes report again).
pub const NOT_DUMPED: [&str; 2] = ["live_events", "nodes"];

/// The data tables of `db`'s database (not the migrations' table,
/// [`NOT_DUMPED`], views or a view's inner table), the log-fed ones first,
/// then by name.
pub(crate) async fn tables(db: &Db) -> Result<Vec<TableInfo>> {
    let tables: Vec<TableRow> = db
        .client()
        .query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase() \
             AND name NOT IN (?, ?, ?) AND engine NOT LIKE '%View' AND engine != 'Dictionary' \
             AND NOT startsWith(name, '.') ORDER BY name",
        )
        .bind(MIGRATIONS_TABLE)
        .bind(NOT_DUMPED[0])
        .bind(NOT_DUMPED[1])
        .fetch_all()
        .await?;
    // No `position` column on 18.16: the rows come in the table's order.
    // `MATERIALIZED` and `ALIAS` columns are computed, not stored.
    let columns: Vec<ColumnRow> = db
        .client()
        .query(
            "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() \
             AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')",
        )
        .fetch_all()
        .await?;
    let mut out: Vec<TableInfo> = tables
        .into_iter()
        .map(|t| TableInfo {
            columns: columns
                .iter()
                .filter(|c| c.table == t.name)
                .map(|c| ColumnEntry {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                })
                .collect(),
            name: t.name,
            engine: t.engine,
        })
        .collect();
    out.sort_by_key(|t| {
        let first = FIRST.iter().position(|f| *f == t.name);
        (first.unwrap_or(FIRST.len()), t.name.clone())
    });
    Ok(out)
}

/// The highest migration applied to `db`'s database (0: none).
pub async fn schema_version(db: &Db) -> Result<u32> {
    Ok(db
        .client()
        .query("SELECT toUInt32(max(version)) FROM schema_migrations")
        .fetch_one()
        .await?)
}

/// The highest migration this binary knows.
pub fn latest_schema_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}
