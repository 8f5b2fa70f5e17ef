//! The shipper: copies the log into ClickHouse in large blocks, each
//! exactly once, and releases the segments ClickHouse holds.
//!
//! A block is the log's records from the shipped position on, up to
//! [`MAX_BLOCK_ROWS`] rows; it is written once [`BLOCK_TRIGGER_BYTES`] of
//! records wait or the oldest has waited `IngestConfig::block_max_age`, so
//! ClickHouse sees a few INSERTs a second whatever the request rate. One
//! block is written at a time, in two INSERTs (`sql::blocks`): its pulses,
//! then its `xp_hourly` rows with a marker.
//!
//! Exactly once, step by step:
//! 1. The block gets a random id and a `received_at`, and both are saved
//!    with the block's log range in `shipper.json` (fsync'd) before any
//!    INSERT starts: a later process knows what may have been written.
//! 2. Each INSERT carries a `query_id` made from the block id. When it
//!    fails or times out, the block is *in doubt*: the shipper runs
//!    `KILL QUERY … SYNC` on that id, which returns once the query is no
//!    longer running, so it can no longer land; only then it asks
//!    ClickHouse whether it did land (a block is one part, whole or absent:
//!    a row of it for pulses, its marker for `xp_hourly`). Landed: the step
//!    is done. Absent: it is inserted again. ClickHouse unreachable: the
//!    block stays in doubt and the shipper asks again later.
//! 3. Only after both INSERTs are known to have landed is the shipped
//!    position moved past the block (fsync'd) and segments before it
//!    deleted.
//!
//! After a crash, step 2's check runs first for the block in
//! `shipper.json`. Its records are read again from the log (still there by
//! step 3) and get the same id and `received_at`.
//!
//! `received_at` is the insertion watermark: [`Watermark`] tells the
//! rollups the time before which every block is settled, so an incremental
//! run that reads `received_at` up to it never misses a block that lands
//! late.

mod legacy;
pub mod state;
mod watermark;
mod write;

pub use watermark::Watermark;

use crate::log::{
    Log, Position,
    reader::{Cursor, ReadError},
    record::Record,
};
use sql::{Db, heartbeats::HeartbeatRow, languages::LanguageRow, pulses::PulseRow};
use state::{Intent, State};
use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// Most rows in one block (a block must stay one ClickHouse block, under
/// its `max_insert_block_size` of 1,048,576 rows).
pub const MAX_BLOCK_ROWS: usize = 100_000;
/// Most bytes of log records in one block.
pub const MAX_BLOCK_LOG_BYTES: u64 = 16 << 20;
/// A block is written as soon as this many bytes of records wait.
pub const BLOCK_TRIGGER_BYTES: u64 = 2 << 20;
/// Longest the oldest waiting record waits before its block is written
/// (the default of `IngestConfig::block_max_age`).
pub const MAX_BLOCK_AGE: Duration = Duration::from_secs(1);
/// Longest one INSERT may run before it is ended with `KILL QUERY` (and
/// one check after a failure before it is given up and asked again).
pub const INSERT_TIMEOUT: Duration = Duration::from_secs(15);
/// Pauses between attempts while ClickHouse fails: from the first to the
/// last, doubling.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_LAST: Duration = Duration::from_secs(5);
/// On shutdown, how long the shipper goes on writing what is logged.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// Users whose rows are looked up to tell whether a block's pulses landed.
const LANDED_SAMPLE_USERS: usize = 8;

/// Counters since start.
#[derive(Debug, Default)]
pub struct ShipStats {
    pub blocks: AtomicU64,
    pub rows: AtomicU64,
    /// ClickHouse errors and timeouts met while writing blocks: failed
    /// INSERTs (each followed by a check) and failed checks.
    pub failures: AtomicU64,
    /// Blocks found already in ClickHouse after a failure or a restart.
    pub found_landed: AtomicU64,
    /// INSERTs still running at the insert timeout, ended with `KILL QUERY`.
    pub slow_inserts: AtomicU64,
}

/// What the rest of the process sees of the shipper.
#[derive(Clone)]
pub struct Shipper {
    pub watermark: Arc<Watermark>,
    pub stats: Arc<ShipStats>,
    shipped: watch::Receiver<Position>,
    hurry: Arc<Notify>,
}

impl Shipper {
    /// Starts shipping `log` from `state` (`State::load` of the log dir):
    /// blocks at most `max_age` old, INSERTs ended past `insert_timeout`.
    pub fn start(
        db: Db,
        log: Log,
        state: State,
        max_age: Duration,
        insert_timeout: Duration,
        legacy: Vec<PathBuf>,
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (shipped_tx, shipped) = watch::channel(state.shipped);
        let handle = Self {
            watermark: Arc::new(Watermark::default()),
            stats: Arc::new(ShipStats::default()),
            shipped,
            hurry: Arc::new(Notify::new()),
        };
        if let Some(intent) = state.intent {
            // In flight from the start: no rollup reads past it meanwhile.
            handle.watermark.resume(intent.received_at);
        }
        let task = Task {
            db,
            dir: log.dir().to_owned(),
            cursor: Some(Cursor::new(log.dir(), state.shipped)),
            log,
            state,
            max_age,
            insert_timeout,
            legacy,
            stop,
            drain_until: None,
            shipped: shipped_tx,
            handle: handle.clone(),
            filtered: Mutex::new(HashSet::new()),
        };
        (handle, tokio::spawn(task.run()))
    }

    /// Everything before this is in ClickHouse.
    pub fn shipped(&self) -> Position {
        *self.shipped.borrow()
    }

    /// Writes what is logged up to `until` now, without waiting for a full
    /// block, and returns once ClickHouse holds it.
    pub async fn flush(&self, until: Position) {
        let mut shipped = self.shipped.clone();
        loop {
            if *shipped.borrow_and_update() >= until {
                return;
            }
            // Wakes the shipper if it waits for a block to fill; if it is
            // busy, the next round asks again.
            self.hurry.notify_waiters();
            tokio::select! {
                changed = shipped.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }
}

/// A block: rows with the block's id and `received_at`.
struct Block {
    id: u64,
    received_at: u32,
    rows: Vec<PulseRow>,
    languages: Vec<LanguageRow>,
    heartbeats: Vec<HeartbeatRow>,
    from: Position,
    to: Position,
    /// Stopped at a size limit: more records wait.
    full: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pulses,
    Xp,
    Heartbeats,
}

/// Shutdown came and the drain time is over.
struct Stopped;

struct Task {
    db: Db,
    log: Log,
    dir: PathBuf,
    cursor: Option<Cursor>,
    state: State,
    max_age: Duration,
    insert_timeout: Duration,
    /// Spool files of earlier versions, shipped before the log.
    legacy: Vec<PathBuf>,
    stop: CancellationToken,
    drain_until: Option<Instant>,
    shipped: watch::Sender<Position>,
    handle: Shipper,
    /// The deleted machines the last INSERT of the current block left out.
    filtered: Mutex<HashSet<u64>>,
}

impl Task {
    async fn run(mut self) {
        if let Some(intent) = self.state.intent {
            tracing::info!(
                block_id = intent.block_id,
                "ingest log: checking the block a previous process was writing"
            );
            // Exactly the records it was made of, whatever the block limits.
            let mut pause = RETRY_FIRST;
            let block = loop {
                match self.read(intent.from, intent.to, true).await {
                    Ok((read, _)) => {
                        break Block {
                            id: intent.block_id,
                            received_at: intent.received_at,
                            rows: sql::blocks::stamp(
                                read.rows,
                                intent.block_id,
                                intent.received_at,
                            ),
                            heartbeats: sql::blocks::stamp(
                                read.heartbeats,
                                intent.block_id,
                                intent.received_at,
                            ),
                            languages: read.languages,
                            from: intent.from,
                            to: intent.to,
                            full: false,
                        };
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "ingest log: cannot read the block in doubt; retrying");
                        if self.pause(&mut pause).await.is_err() {
                            return;
                        }
                    }
                }
            };
            if self.write(&block, false).await.is_err() {
                return;
            }
        }
        if self.ship_legacy().await.is_err() {
            return;
        }
        let mut durable = self.log.durable();
        let mut waiting_since: Option<Instant> = None;
        while let Some(until) = self.wait(&mut durable, &mut waiting_since).await {
            let started = Instant::now();
            let (read, to) = match self.read(self.state.shipped, until, false).await {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(error = %e, "ingest log: cannot read; retrying");
                    if self.pause(&mut RETRY_LAST.clone()).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let id = rand::random::<u64>();
            let received_at = self.handle.watermark.begin();
            let block = Block {
                id,
                received_at,
                full: to < until,
                rows: sql::blocks::stamp(read.rows, id, received_at),
                heartbeats: sql::blocks::stamp(read.heartbeats, id, received_at),
                languages: read.languages,
                from: self.state.shipped,
                to,
            };
            if self.ship(&block).await.is_err() {
                break;
            }
            // Records after a full block have waited already.
            waiting_since = block.full.then_some(started);
        }
        tracing::debug!("ingest log: shipper stopped");
    }

    /// Waits until a block is due; its end (the durable end now). `None`
    /// once shutting down with nothing left or the drain time over.
    async fn wait(
        &mut self,
        durable: &mut watch::Receiver<Position>,
        waiting_since: &mut Option<Instant>,
    ) -> Option<Position> {
        loop {
            let end = *durable.borrow_and_update();
            let pending = pending_bytes(self.state.shipped, end);
            if self.stop.is_cancelled() {
                let deadline = *self
                    .drain_until
                    .get_or_insert_with(|| Instant::now() + SHUTDOWN_DRAIN);
                return (pending > 0 && Instant::now() < deadline).then_some(end);
            }
            if pending == 0 {
                *waiting_since = None;
                tokio::select! {
                    _ = durable.changed() => {}
                    () = self.stop.cancelled() => {}
                }
                continue;
            }
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if pending >= BLOCK_TRIGGER_BYTES || since.elapsed() >= self.max_age {
                return Some(end);
            }
            tokio::select! {
                _ = durable.changed() => {}
                () = tokio::time::sleep_until(since + self.max_age) => {}
                () = self.handle.hurry.notified() => return Some(*durable.borrow_and_update()),
                () = self.stop.cancelled() => {}
            }
        }
    }

    /// Decodes the records from `from` up to `until` (all of them when
    /// `whole`, else at most a block's worth): their rows, first spellings
    /// and the end of the last one.
    async fn read(
        &mut self,
        from: Position,
        until: Position,
        whole: bool,
    ) -> Result<(Records, Position), ReadError> {
        let mut cursor = match self.cursor.take() {
            Some(c) if c.position() == from => c,
            _ => Cursor::new(&self.dir, from),
        };
        let dir = self.dir.clone();
        let (cursor, read) = tokio::task::spawn_blocking(move || {
            let read = read_block(&mut cursor, &dir, until, whole);
            (cursor, read)
        })
        .await
        .map_err(|e| ReadError::Io(std::io::Error::other(e)))?;
        self.cursor = Some(cursor);
        read
    }

    async fn ship(&mut self, block: &Block) -> Result<(), Stopped> {
        self.state.intent = Some(Intent {
            block_id: block.id,
            received_at: block.received_at,
            from: block.from,
            to: block.to,
        });
        self.save().await?;
        self.write(block, true).await
    }

    /// Writes the INSERTs of `block` (`fresh`: none of them ever started),
    /// then moves the shipped position past it.
    async fn write(&mut self, block: &Block, fresh: bool) -> Result<(), Stopped> {
        let started = Instant::now();
        if block.rows.is_empty() && block.heartbeats.is_empty() {
            // Only first spellings (or nothing): duplicates are harmless.
            self.settle(block, Stage::Pulses, true).await?;
        } else {
            self.settle(block, Stage::Pulses, fresh).await?;
            // Each INSERT starts only once the one before landed: in a
            // fresh block it never started before.
            if !block.rows.is_empty() {
                self.settle(block, Stage::Xp, fresh).await?;
            }
            if !block.heartbeats.is_empty() {
                self.settle(block, Stage::Heartbeats, fresh).await?;
            }
            self.delete_late(block).await?;
        }
        self.state.shipped = block.to;
        self.state.intent = None;
        self.save().await?;
        self.handle.watermark.end();
        self.shipped.send_replace(block.to);
        let rows = (block.rows.len() + block.heartbeats.len()) as u64;
        self.handle.stats.blocks.fetch_add(1, Ordering::Relaxed);
        self.handle.stats.rows.fetch_add(rows, Ordering::Relaxed);
        metrics::histogram!(crate::metrics::SHIP_BLOCK_ROWS).record(rows as f64);
        metrics::histogram!(crate::metrics::SHIP_BLOCK_SECONDS)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(crate::metrics::SHIP_ROWS).increment(rows);
        if let Err(e) = self.log.release(block.to) {
            tracing::warn!(error = %e, "ingest log: cannot delete shipped segments");
        }
        tracing::debug!(
            block_id = block.id,
            rows = block.rows.len(),
            heartbeats = block.heartbeats.len(),
            "ingest log: block shipped"
        );
        Ok(())
    }

    /// Saves the state, retrying while the disk refuses.
    async fn save(&mut self) -> Result<(), Stopped> {
        let mut pause = RETRY_FIRST;
        loop {
            let (state, dir) = (self.state.clone(), self.dir.clone());
            match tokio::task::spawn_blocking(move || state.save(&dir)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "ingest log: cannot save the shipper's state")
                }
                Err(e) => tracing::error!(error = %e, "ingest log: state save panicked"),
            }
            self.pause(&mut pause).await?;
        }
    }

    /// Sleeps before another attempt; `Stopped` once shutting down past the
    /// drain time.
    pub(super) async fn pause(&self, pause: &mut Duration) -> Result<(), Stopped> {
        if self.stop.is_cancelled()
            && self
                .drain_until
                .is_none_or(|deadline| Instant::now() >= deadline)
        {
            return Err(Stopped);
        }
        tokio::select! {
            () = tokio::time::sleep(*pause) => {}
            () = self.stop.cancelled(), if self.drain_until.is_none() => {}
        }
        *pause = (*pause * 2).min(RETRY_LAST);
        Ok(())
    }
}

/// Bytes of records between two positions (a whole segment's worth when
/// they are in different segments).
fn pending_bytes(shipped: Position, durable: Position) -> u64 {
    if durable <= shipped {
        0
    } else if durable.segment == shipped.segment {
        durable.offset - shipped.offset
    } else {
        u64::MAX
    }
}

/// The rows of a run of records.
#[derive(Default)]
struct Records {
    rows: Vec<PulseRow>,
    languages: Vec<LanguageRow>,
    heartbeats: Vec<HeartbeatRow>,
}

/// Reads a block's worth of records (every one when `whole`) with
/// `cursor`, up to `until`.
fn read_block(
    cursor: &mut Cursor,
    dir: &std::path::Path,
    until: Position,
    whole: bool,
) -> Result<(Records, Position), ReadError> {
    let mut read = Records::default();
    let mut bytes = 0u64;
    while whole
        || (read.rows.len() + read.heartbeats.len() < MAX_BLOCK_ROWS && bytes < MAX_BLOCK_LOG_BYTES)
    {
        match cursor.next(until) {
            Ok(Some((payload, _))) => {
                bytes += payload.len() as u64;
                match Record::decode(&payload) {
                    Ok(mut record) => {
                        read.rows.append(&mut record.rows);
                        read.languages.append(&mut record.languages);
                        read.heartbeats.append(&mut record.heartbeats);
                    }
                    Err(e) => tracing::error!(
                        error = %e, at = ?cursor.position(),
                        "ingest log: skipping a record this version cannot read"
                    ),
                }
            }
            Ok(None) => break,
            Err(ReadError::Damaged { segment, offset }) if segment < until.segment => {
                // A closed segment the disk damaged: keep the rest of the
                // log flowing and the damaged file for the operator.
                let path = crate::log::segment::path(dir, segment);
                let aside = path.with_extension("damaged");
                tracing::error!(
                    segment, offset, file = %aside.display(),
                    "ingest log: damaged segment set aside; records after the damage are not shipped"
                );
                std::fs::rename(&path, &aside)?;
                cursor.skip_segment(until)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok((read, cursor.position()))
}

pub(crate) fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}
