//! `codestats backup DIR [--keep N]` and `codestats restore DUMP`: the
//! dump and the restore are `sql::backup`'s; here the cut is taken from
//! this data dir's ingest log, a dump torn by a block in flight is taken
//! again, old dumps are pruned, and progress is drawn.

use crate::{config::Config, output::outln, store::Store};
use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use jobs::Scope;
use sql::backup::{BackupLock, DumpOptions, Manifest, Progress};
use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

/// Rows received in the last this long are left for the next dump: a
/// block gets its `received_at` a moment before its intent reaches
/// `shipper.json`, so the newest seconds may hold a block not visible
/// there yet.
const CUT_MARGIN: Duration = Duration::from_secs(5);
/// Dumps taken before giving up when each turns out torn by a block
/// received before its cut (one that was not in `shipper.json` yet).
const MAX_ATTEMPTS: u32 = 3;
/// A block in flight longer than this is worth a warning: the dump stops
/// at it.
const STALE_IN_FLIGHT: Duration = Duration::from_secs(60);
/// How often the progress bar is redrawn.
const TICK: Duration = Duration::from_millis(200);

pub async fn backup(
    config: &Config,
    store: &Store,
    dir: &Path,
    keep: Option<usize>,
) -> anyhow::Result<()> {
    refuse_cluster(store)?;
    let lock = BackupLock::acquire(dir)
        .with_context(|| format!("cannot back up into {}", dir.display()))?;
    let started = Utc::now();
    let clock = Instant::now();
    let partial = lock.start(started)?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(progress.clone());
    let dumped = take_dump(config, store, &lock, &partial, started, &progress).await;
    bar.finish();
    let manifest = match dumped {
        Ok(manifest) => manifest,
        Err(e) => {
            lock.abandon(&partial);
            return Err(e);
        }
    };
    let path = lock.finish(&partial, started)?;
    eprintln!(
        "dumped {} tables, {} rows, {} in {:.1} s: rows received before {}",
        manifest.tables.len(),
        manifest.rows(),
        HumanBytes(manifest.bytes()),
        clock.elapsed().as_secs_f64(),
        cut_time(&manifest)
    );
    if let Some(keep) = keep {
        for removed in lock
            .prune(keep)
            .with_context(|| format!("dumped; cannot prune {}", dir.display()))?
        {
            eprintln!("removed {}", removed.display());
        }
    }
    outln!("{}", path.display())?;
    Ok(())
}

/// Dumps into `partial` under a cut no block of this node's log in flight
/// precedes; again (at most [`MAX_ATTEMPTS`] times) when one turns out to
/// have been.
async fn take_dump(
    config: &Config,
    store: &Store,
    lock: &BackupLock,
    partial: &Path,
    started: DateTime<Utc>,
    progress: &Arc<Progress>,
) -> anyhow::Result<Manifest> {
    let log_dir = &config.ingest.log_dir;
    let settled = |now: u32| {
        ingest::ship::state::settled_before(log_dir, now)
            .with_context(|| format!("cannot read the shipper's state in {}", log_dir.display()))
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let now = now_secs();
        let cut = settled(now.saturating_sub(CUT_MARGIN.as_secs() as u32))?;
        if u64::from(now - cut) > (CUT_MARGIN + STALE_IN_FLIGHT).as_secs() {
            tracing::warn!(
                in_flight_since = cut,
                "a block has been in flight for long (is ClickHouse refusing writes?): \
                 the dump stops before it"
            );
        }
        let options = DumpOptions {
            cut,
            started,
            codestats_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let manifest = sql::backup::dump(&store.db, partial, &options, progress)
            .await
            .with_context(|| format!("cannot dump database {}", store.db.database()))?;
        let in_flight = settled(u32::MAX)?;
        if in_flight >= cut {
            return Ok(manifest);
        }
        tracing::warn!(
            attempt,
            cut,
            in_flight,
            "a block received before the cut was in flight during the dump; dumping again"
        );
        lock.clear(partial)?;
    }
    anyhow::bail!(
        "each of {MAX_ATTEMPTS} dumps was torn by a block received before its cut \
         (is the shipper restarting over and over?)"
    )
}

pub async fn restore(
    config: &Config,
    store: &Store,
    dump: &Path,
    no_build: bool,
) -> anyhow::Result<()> {
    refuse_cluster(store)?;
    let progress = Arc::new(Progress::default());
    let bar = Bar::start(progress.clone());
    let restored = sql::backup::restore(&store.db, dump, &progress).await;
    bar.finish();
    let manifest = restored.with_context(|| format!("cannot restore {}", dump.display()))?;
    outln!(
        "restored {} rows of {} tables into database {} (rows received before {})",
        manifest.rows(),
        manifest.tables.len(),
        store.db.database(),
        cut_time(&manifest)
    )?;
    if !no_build {
        let rollups = super::build::rollups(config, store)?;
        let report = rollups
            .run(Scope::Full)
            .await
            .context("restored; building the site failed (run `codestats build`)")?;
        outln!(
            "site built: {} profiles in {}",
            report.profiles,
            rollups.builder().output_dir().display()
        )?;
    }
    Ok(())
}

/// The manifest's cut, RFC 3339.
fn cut_time(manifest: &Manifest) -> String {
    DateTime::from_timestamp_millis(manifest.cut_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now_secs() -> u32 {
    Utc::now().timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

/// A progress bar over [`Progress`]: rows of the table under way. It
/// draws on stderr when that is a terminal, and not at all else.
struct Bar {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Bar {
    fn start(progress: Arc<Progress>) -> Self {
        let bar = ProgressBar::new(0).with_style(
            ProgressStyle::with_template(
                "{msg:14} {wide_bar} {human_pos}/{human_len} rows, eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let ticker = {
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    let rows = progress.rows();
                    // The dump's total is an estimate: never below what is done.
                    bar.set_length(progress.total().max(rows));
                    bar.set_position(rows);
                    bar.set_message(progress.step());
                    tokio::time::sleep(TICK).await;
                }
            })
        };
        Self { bar, ticker }
    }

    fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// Dumps are of one server: a dump's cut is one node's shipper, and its
/// tables are read from one server's system tables. A cluster is backed up
/// shard by shard with ClickHouse's own tools (docs/deploy.md).
fn refuse_cluster(store: &Store) -> anyhow::Result<()> {
    if let Some(cluster) = store.db.cluster() {
        anyhow::bail!(
            "backup and restore work on one server; cluster {} is backed up \
             shard by shard (see docs/deploy.md, \"Topologies\")",
            cluster.name()
        );
    }
    Ok(())
}
