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

pub mod state;

use crate::log::{
    Log, Position,
    reader::{Cursor, ReadError},
    record::Record,
};
use sql::{Db, languages::LanguageRow, pulses::PulseRow};
use state::{Intent, State};
use std::{
    borrow::Cow,
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

/// The time before which every block is settled (in ClickHouse, or
/// known never to land), for the rollups' incremental runs.
#[derive(Debug, Default)]
pub struct Watermark {
    inner: Mutex<WatermarkInner>,
}

#[derive(Debug, Default)]
struct WatermarkInner {
    /// `received_at` of the block being written.
    in_flight: Option<u32>,
    /// The latest `received_at` given out: they never go back.
    last: u32,
}

impl Watermark {
    /// Every block with `received_at` below this is in ClickHouse (or
    /// will never be).
    pub fn settled_before(&self) -> u32 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .in_flight
            .unwrap_or_else(|| now_secs().max(inner.last))
    }

    /// The `received_at` of a new block, which is in flight from now on.
    fn begin(&self) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let at = now_secs().max(inner.last);
        inner.last = at;
        inner.in_flight = Some(at);
        at
    }

    /// A block of a previous process is in flight again.
    fn resume(&self, received_at: u32) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.last = inner.last.max(received_at);
        inner.in_flight = Some(received_at);
    }

    fn end(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_flight = None;
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct ShipStats {
    pub blocks: AtomicU64,
    pub rows: AtomicU64,
    /// INSERTs that failed or timed out (each followed by a check).
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
        stop: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (shipped_tx, shipped) = watch::channel(state.shipped);
        let handle = Self {
            watermark: Arc::new(Watermark::default()),
            stats: Arc::new(ShipStats::default()),
            shipped,
            hurry: Arc::new(Notify::new()),
        };
        let task = Task {
            db,
            dir: log.dir().to_owned(),
            cursor: Some(Cursor::new(log.dir(), state.shipped)),
            log,
            state,
            max_age,
            insert_timeout,
            stop,
            drain_until: None,
            shipped: shipped_tx,
            handle: handle.clone(),
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
    from: Position,
    to: Position,
    /// Stopped at a size limit: more records wait.
    full: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pulses,
    Xp,
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
    stop: CancellationToken,
    drain_until: Option<Instant>,
    shipped: watch::Sender<Position>,
    handle: Shipper,
}

impl Task {
    async fn run(mut self) {
        if let Some(intent) = self.state.intent {
            tracing::info!(
                block_id = intent.block_id,
                "ingest log: checking the block a previous process was writing"
            );
            self.handle.watermark.resume(intent.received_at);
            // Exactly the records it was made of, whatever the block limits.
            let mut pause = RETRY_FIRST;
            let block = loop {
                match self.read(intent.from, intent.to, true).await {
                    Ok((rows, languages, _)) => {
                        break Block {
                            id: intent.block_id,
                            received_at: intent.received_at,
                            rows: stamp(rows, intent.block_id, intent.received_at),
                            languages,
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
        let mut durable = self.log.durable();
        let mut waiting_since: Option<Instant> = None;
        while let Some(until) = self.wait(&mut durable, &mut waiting_since).await {
            let started = Instant::now();
            let (rows, languages, to) = match self.read(self.state.shipped, until, false).await {
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
                rows: stamp(rows, id, received_at),
                languages,
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
    ) -> Result<(Vec<PulseRow>, Vec<LanguageRow>, Position), ReadError> {
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

    /// Writes both INSERTs of `block` (`fresh`: none of them ever started),
    /// then moves the shipped position past it.
    async fn write(&mut self, block: &Block, fresh: bool) -> Result<(), Stopped> {
        if block.rows.is_empty() {
            // Only first spellings (or nothing): duplicates are harmless.
            self.settle(block, Stage::Pulses, true).await?;
        } else {
            self.settle(block, Stage::Pulses, fresh).await?;
            // The xp INSERT starts only once the pulses landed: in a fresh
            // block it never started before.
            self.settle(block, Stage::Xp, fresh).await?;
        }
        self.state.shipped = block.to;
        self.state.intent = None;
        self.save().await?;
        self.handle.watermark.end();
        self.shipped.send_replace(block.to);
        self.handle.stats.blocks.fetch_add(1, Ordering::Relaxed);
        self.handle
            .stats
            .rows
            .fetch_add(block.rows.len() as u64, Ordering::Relaxed);
        if let Err(e) = self.log.release(block.to) {
            tracing::warn!(error = %e, "ingest log: cannot delete shipped segments");
        }
        tracing::debug!(
            block_id = block.id,
            rows = block.rows.len(),
            "ingest log: block shipped"
        );
        Ok(())
    }

    /// Makes sure `stage` of `block` is in ClickHouse exactly once.
    /// `absent`: it is known not to be there (never started).
    async fn settle(&self, block: &Block, stage: Stage, mut absent: bool) -> Result<(), Stopped> {
        let query_id = match stage {
            Stage::Pulses => sql::blocks::pulses_query_id(block.id),
            Stage::Xp => sql::blocks::xp_query_id(block.id),
        };
        let mut pause = RETRY_FIRST;
        loop {
            if absent {
                match self.attempt(block, stage, &query_id).await? {
                    Ok(()) => return Ok(()),
                    Err(e) => tracing::warn!(
                        error = %e, block_id = block.id, ?stage,
                        "ingest log: insert failed; checking what landed"
                    ),
                }
                self.handle.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
            // In doubt: end the INSERT, then look.
            let check = async {
                sql::blocks::kill(&self.db, &query_id).await?;
                self.landed(block, stage).await
            };
            match tokio::time::timeout(self.insert_timeout, check).await {
                Ok(Ok(true)) => {
                    self.handle
                        .stats
                        .found_landed
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Ok(false)) => absent = true,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, block_id = block.id, "ingest log: cannot check a block yet");
                    absent = false;
                }
                Err(_) => absent = false,
            }
            self.pause(&mut pause).await?;
        }
    }

    /// One INSERT of `stage`. Past the insert timeout it is ended with
    /// `KILL QUERY` (again every [`RETRY_LAST`]) but its request is kept
    /// open until ClickHouse answers it or the connection breaks: a request
    /// dropped unanswered might still be started by a slow server after
    /// the check that follows, and land twice.
    async fn attempt(
        &self,
        block: &Block,
        stage: Stage,
        query_id: &str,
    ) -> Result<sql::Result<()>, Stopped> {
        let insert = self.insert(block, stage);
        tokio::pin!(insert);
        let mut kill_at = Instant::now() + self.insert_timeout;
        let mut kills = tokio::task::JoinSet::new();
        // On shutdown an INSERT under way may finish within the drain time.
        let mut give_up_at: Option<Instant> = None;
        loop {
            tokio::select! {
                outcome = &mut insert => return Ok(outcome),
                () = tokio::time::sleep_until(kill_at) => {
                    if kills.is_empty() {
                        tracing::warn!(block_id = block.id, ?stage, "ingest log: insert too slow; ending it");
                        self.handle.stats.slow_inserts.fetch_add(1, Ordering::Relaxed);
                    }
                    // The KILL runs beside the INSERT, which is still awaited.
                    while kills.try_join_next().is_some() {}
                    if kills.is_empty() {
                        let (db, query_id) = (self.db.clone(), query_id.to_owned());
                        kills.spawn(async move {
                            if let Err(e) = sql::blocks::kill(&db, &query_id).await {
                                tracing::debug!(error = %e, "ingest log: cannot end a slow insert yet");
                            }
                        });
                    }
                    kill_at = Instant::now() + RETRY_LAST;
                }
                () = self.stop.cancelled(), if give_up_at.is_none() => {
                    give_up_at = Some(
                        self.drain_until
                            .unwrap_or_else(|| Instant::now() + SHUTDOWN_DRAIN),
                    );
                }
                () = tokio::time::sleep_until(give_up_at.unwrap_or(kill_at)), if give_up_at.is_some() => {
                    return Err(Stopped);
                }
            }
        }
    }

    /// The block's rows whose machine is not deleted: a machine deleted
    /// while its pulses waited here loses them, as its stored ones.
    async fn live_rows<'b>(&self, block: &'b Block) -> sql::Result<Cow<'b, [PulseRow]>> {
        let mut machines: Vec<u64> = block.rows.iter().map(|r| r.machine_id).collect();
        machines.sort_unstable();
        machines.dedup();
        let deleted: HashSet<u64> = sql::accounts::deleted_machines(&self.db, &machines)
            .await?
            .into_iter()
            .collect();
        if deleted.is_empty() {
            return Ok(Cow::Borrowed(&block.rows));
        }
        Ok(Cow::Owned(
            block
                .rows
                .iter()
                .filter(|r| !deleted.contains(&r.machine_id))
                .cloned()
                .collect(),
        ))
    }

    async fn insert(&self, block: &Block, stage: Stage) -> sql::Result<()> {
        match stage {
            Stage::Pulses => {
                sql::languages::insert(&self.db, &block.languages).await?;
                let rows = self.live_rows(block).await?;
                if !rows.is_empty() {
                    sql::blocks::insert_pulses(&self.db, block.id, &rows).await?;
                }
            }
            Stage::Xp => {
                let rows = self.live_rows(block).await?;
                if !rows.is_empty() {
                    sql::blocks::insert_xp(&self.db, block.id, block.received_at, &rows).await?;
                }
            }
        }
        Ok(())
    }

    async fn landed(&self, block: &Block, stage: Stage) -> sql::Result<bool> {
        let rows = self.live_rows(block).await?;
        if rows.is_empty() {
            // Nothing of it is to be written.
            return Ok(stage == Stage::Xp || block.languages.is_empty());
        }
        match stage {
            Stage::Pulses => {
                let mut users: Vec<u64> = Vec::new();
                for row in rows.iter() {
                    if !users.contains(&row.user_id) {
                        users.push(row.user_id);
                        if users.len() == LANDED_SAMPLE_USERS {
                            break;
                        }
                    }
                }
                sql::blocks::pulses_landed(&self.db, block.id, block.received_at, &users).await
            }
            Stage::Xp => sql::blocks::xp_landed(&self.db, block.id, block.received_at).await,
        }
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
    async fn pause(&self, pause: &mut Duration) -> Result<(), Stopped> {
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

fn stamp(mut rows: Vec<PulseRow>, id: u64, received_at: u32) -> Vec<PulseRow> {
    for row in &mut rows {
        row.batch_id = id;
        row.received_at = received_at;
    }
    rows
}

/// Reads a block's worth of records (every one when `whole`) with
/// `cursor`, up to `until`.
fn read_block(
    cursor: &mut Cursor,
    dir: &std::path::Path,
    until: Position,
    whole: bool,
) -> Result<(Vec<PulseRow>, Vec<LanguageRow>, Position), ReadError> {
    let mut rows = Vec::new();
    let mut languages = Vec::new();
    let mut bytes = 0u64;
    while whole || (rows.len() < MAX_BLOCK_ROWS && bytes < MAX_BLOCK_LOG_BYTES) {
        match cursor.next(until) {
            Ok(Some((payload, _))) => {
                bytes += payload.len() as u64;
                match Record::decode(&payload) {
                    Ok(mut record) => {
                        rows.append(&mut record.rows);
                        languages.append(&mut record.languages);
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
    Ok((rows, languages, cursor.position()))
}

pub(crate) fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}
