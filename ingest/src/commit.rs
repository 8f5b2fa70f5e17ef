//! Group commit: concurrent requests' pulses are gathered into one batch and
//! written with one INSERT; each request is answered when its batch is
//! durable — in ClickHouse, or else in the local spool.
//!
//! The committer writes a batch as soon as a write slot is free (up to
//! [`MAX_INSERTS_IN_FLIGHT`] at once), taking everything that arrived
//! meanwhile (up to [`MAX_BATCH_ROWS`]): batches grow with load and latency
//! stays one insert long when idle. Before writing it
//! lingers while requests keep arriving (each within [`LINGER_GAP`], for at
//! most [`MAX_LINGER`]): the clients answered by the previous INSERT are
//! back a moment later, and without the linger the load splits into two
//! half-size batches taking turns, each paying ClickHouse's cost per INSERT.
//!
//! Exactly once: a batch has an id and a single `received_at`, so it lands
//! in one partition and its INSERT is all or nothing. Replaying a spooled
//! batch first counts its rows in ClickHouse and inserts only when there
//! are none, so a batch whose INSERT timed out but did land is not written
//! twice.

use crate::spool::{Batch, Spool};
use sql::{Db, languages::LanguageRow, pulses::PulseRow};
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// Most rows in one INSERT.
pub const MAX_BATCH_ROWS: usize = 100_000;
/// A batch keeps gathering while requests arrive at most this far apart…
pub const LINGER_GAP: Duration = Duration::from_millis(1);
/// …for at most this long after its first request.
pub const MAX_LINGER: Duration = Duration::from_millis(5);
/// Batches written at the same time (the default of
/// `IngestConfig::inserts_in_flight`). More slots shorten the wait behind a
/// running INSERT; fewer make larger batches, and ClickHouse pays a fixed
/// cost per INSERT: while all slots are busy the next batch keeps growing.
pub const MAX_INSERTS_IN_FLIGHT: usize = 4;
/// Requests waiting for the committer before new ones are refused (503).
pub const QUEUE_CAPACITY: usize = 65_536;
/// Longest an INSERT may take before its batch goes to the spool instead.
pub const INSERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most rows replayed from the spool in one INSERT (well under ClickHouse's
/// `max_insert_block_size`, so the INSERT stays one block).
pub const REPLAY_GROUP_ROWS: usize = 500_000;
/// How often the spool is replayed into ClickHouse while it holds batches.
pub const REPLAY_INTERVAL: Duration = Duration::from_secs(1);
/// A spooled batch is replayed only this long after it was formed, so an
/// INSERT that timed out has surely finished or failed by then (the default
/// of `IngestConfig::replay_delay`).
pub const REPLAY_DELAY: Duration = Duration::from_secs(10);

/// Where an acknowledged pulse is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    ClickHouse,
    Spool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CommitError {
    #[error("neither clickhouse nor the spool could store the batch")]
    Unavailable,
    #[error("too many pulses waiting to be written")]
    Overloaded,
}

/// One pulse waiting to be written.
pub struct Pending {
    pub rows: Vec<PulseRow>,
    pub languages: Vec<LanguageRow>,
    pub done: oneshot::Sender<Result<Durable, CommitError>>,
    /// When the request queued it: past the commit timeout
    /// ([`crate::limits::COMMIT_TIMEOUT`]) it is answered 503 and never
    /// written.
    pub queued_at: tokio::time::Instant,
}

impl Pending {
    /// Whether this pulse should still be written: its request waits for
    /// the answer, and has not waited longer than `timeout`.
    fn wanted(&self, timeout: Duration) -> bool {
        !self.done.is_closed() && self.queued_at.elapsed() <= timeout
    }
}

#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Pending>,
}

struct Writer {
    db: Db,
    spool: Spool,
    /// False after a failed INSERT until ClickHouse answers again: batches go
    /// straight to the spool meanwhile instead of waiting on a dead server.
    clickhouse_up: AtomicBool,
}

impl Committer {
    /// Starts the committer and the spool replayer; both end when `stop`
    /// is cancelled, the committer after writing what was queued.
    pub fn start(
        db: Db,
        spool: Spool,
        replay_delay: Duration,
        inserts_in_flight: usize,
        commit_timeout: Duration,
        stop: CancellationToken,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = Arc::new(Writer {
            db,
            spool,
            clickhouse_up: AtomicBool::new(true),
        });
        let tasks = vec![
            tokio::spawn(commit_loop(
                writer.clone(),
                rx,
                inserts_in_flight.max(1),
                commit_timeout,
                stop.clone(),
            )),
            tokio::spawn(replay_loop(writer, replay_delay, stop)),
        ];
        (Self { tx }, tasks)
    }

    /// Queues `rows` (one pulse) and waits until they are durable.
    pub async fn commit(
        &self,
        rows: Vec<PulseRow>,
        languages: Vec<LanguageRow>,
    ) -> Result<Durable, CommitError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .try_send(Pending {
                rows,
                languages,
                done,
                queued_at: tokio::time::Instant::now(),
            })
            .map_err(|_| CommitError::Overloaded)?;
        wait.await.unwrap_or(Err(CommitError::Unavailable))
    }
}

async fn commit_loop(
    writer: Arc<Writer>,
    mut rx: mpsc::Receiver<Pending>,
    inserts_in_flight: usize,
    commit_timeout: Duration,
    stop: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(inserts_in_flight));
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            () = stop.cancelled() => {
                // Refuse new pulses, write the queued ones, then end.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        // While every slot is busy, requests queue up: the next batch grows.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let linger_until = tokio::time::Instant::now() + MAX_LINGER;
        let mut pending = vec![first];
        let mut rows = pending[0].rows.len();
        while rows < MAX_BATCH_ROWS {
            let next = match rx.try_recv() {
                Ok(p) => Some(p),
                Err(_) if stop.is_cancelled() => None,
                Err(_) => {
                    let until = linger_until.min(tokio::time::Instant::now() + LINGER_GAP);
                    tokio::time::timeout_at(until, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
            match next {
                Some(p) => {
                    rows += p.rows.len();
                    pending.push(p);
                }
                None => break,
            }
        }
        // A request that gave up or waited too long is answered with an
        // error now and its pulse left out: an error answer never hides a
        // write the plugin would then repeat.
        let (mut pending, stale): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|p| p.wanted(commit_timeout));
        for mut p in stale {
            // A first spelling of a language is kept all the same.
            if let Some(first) = pending.first_mut() {
                first.languages.append(&mut p.languages);
            }
            let _ = p.done.send(Err(CommitError::Overloaded));
        }
        if pending.is_empty() {
            continue;
        }
        let batch = form_batch(&mut pending);
        let writer = writer.clone();
        in_flight.spawn(async move {
            let outcome = writer.persist(&batch).await;
            drop(slot);
            for p in pending {
                let _ = p.done.send(outcome.clone());
            }
        });
        // Reap finished writes so the set stays small.
        while in_flight.try_join_next().is_some() {}
    }
    in_flight.join_all().await;
    tracing::debug!("committer stopped: no more requests");
}

fn form_batch(pending: &mut [Pending]) -> Batch {
    let batch_id = rand::random::<u64>();
    let received_at = now_secs();
    let mut pulses = Vec::with_capacity(pending.iter().map(|p| p.rows.len()).sum());
    let mut languages = Vec::new();
    for p in pending.iter_mut() {
        for mut row in p.rows.drain(..) {
            row.batch_id = batch_id;
            row.received_at = received_at;
            pulses.push(row);
        }
        languages.append(&mut p.languages);
    }
    Batch {
        batch_id,
        received_at,
        pulses,
        languages,
    }
}

impl Writer {
    async fn persist(&self, batch: &Batch) -> Result<Durable, CommitError> {
        if batch.pulses.is_empty() && batch.languages.is_empty() {
            return Ok(Durable::ClickHouse);
        }
        if self.clickhouse_up.load(Ordering::Relaxed) {
            let started = std::time::Instant::now();
            match tokio::time::timeout(INSERT_TIMEOUT, insert(&self.db, batch)).await {
                Ok(Ok(())) => {
                    tracing::debug!(
                        rows = batch.pulses.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "batch inserted"
                    );
                    return Ok(Durable::ClickHouse);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, rows = batch.pulses.len(), "insert failed; spooling")
                }
                Err(_) => {
                    tracing::warn!(rows = batch.pulses.len(), "insert timed out; spooling")
                }
            }
            self.clickhouse_up.store(false, Ordering::Relaxed);
        }
        let spool = self.spool.clone();
        let owned = batch.clone();
        let spooled = match tokio::task::spawn_blocking(move || spool.write(&owned)).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        };
        match spooled {
            Ok(()) => Ok(Durable::Spool),
            Err(e) => {
                tracing::error!(error = %e, dir = %self.spool.dir().display(), "cannot spool batch");
                // The INSERT that failed or timed out may have landed after
                // all: then the pulses are stored and must not be refused.
                if self.landed(batch).await {
                    Ok(Durable::ClickHouse)
                } else {
                    Err(CommitError::Unavailable)
                }
            }
        }
    }

    /// Whether every row of `batch` is in ClickHouse (false when it cannot
    /// tell), after the batch's INSERT failed or timed out.
    async fn landed(&self, batch: &Batch) -> bool {
        if batch.pulses.is_empty() {
            return false;
        }
        match sql::pulses::batches_present(
            &self.db,
            &[batch.batch_id],
            batch.received_at,
            batch.received_at,
        )
        .await
        {
            Ok(present) => present
                .iter()
                .any(|(id, n)| *id == batch.batch_id && *n == batch.pulses.len() as u64),
            Err(_) => false,
        }
    }

    /// Replays every spooled batch old enough; stops at the first
    /// ClickHouse error. Returns the batches replayed.
    ///
    /// Batches formed in the same month are replayed together, in one
    /// INSERT of at most [`REPLAY_GROUP_ROWS`] rows: they land in one
    /// partition, so that INSERT is all or nothing too.
    async fn replay(&self, min_age: Duration) -> sql::Result<usize> {
        let now = now_secs();
        let mut replayed = 0;
        let mut group: Vec<(PathBuf, Batch)> = Vec::new();
        let mut group_rows = 0;
        for path in self.spool.pending()? {
            let batch = match Spool::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "unreadable spool file left in place");
                    continue;
                }
            };
            if u64::from(now.saturating_sub(batch.received_at)) < min_age.as_secs() {
                continue;
            }
            let same_month = group
                .first()
                .is_none_or(|(_, first)| month(first.received_at) == month(batch.received_at));
            if !same_month || group_rows + batch.pulses.len() > REPLAY_GROUP_ROWS {
                replayed += self.replay_group(std::mem::take(&mut group)).await?;
                group_rows = 0;
            }
            group_rows += batch.pulses.len();
            group.push((path, batch));
        }
        replayed += self.replay_group(group).await?;
        Ok(replayed)
    }

    /// Inserts the batches of `group` that ClickHouse does not hold yet (an
    /// INSERT that timed out may have landed), then deletes their files.
    async fn replay_group(&self, group: Vec<(PathBuf, Batch)>) -> sql::Result<usize> {
        let (Some(from), Some(to)) = (
            group.iter().map(|(_, b)| b.received_at).min(),
            group.iter().map(|(_, b)| b.received_at).max(),
        ) else {
            return Ok(0);
        };
        // Pulses of a machine deleted since they were spooled are not
        // written: the delete has already run over ClickHouse.
        let mut machines: Vec<u64> = group
            .iter()
            .flat_map(|(_, b)| b.pulses.iter().map(|p| p.machine_id))
            .collect();
        machines.sort_unstable();
        machines.dedup();
        let deleted: std::collections::HashSet<u64> =
            sql::accounts::deleted_machines(&self.db, &machines)
                .await?
                .into_iter()
                .collect();
        let ids: Vec<u64> = group.iter().map(|(_, b)| b.batch_id).collect();
        let present: HashMap<u64, u64> = sql::pulses::batches_present(&self.db, &ids, from, to)
            .await?
            .into_iter()
            .collect();
        let mut missing = Batch {
            batch_id: 0,
            received_at: from,
            pulses: Vec::new(),
            languages: Vec::new(),
        };
        for (_, batch) in &group {
            match present.get(&batch.batch_id) {
                None => {
                    missing.pulses.extend(
                        batch
                            .pulses
                            .iter()
                            .filter(|p| !deleted.contains(&p.machine_id))
                            .cloned(),
                    );
                    missing.languages.extend(batch.languages.iter().cloned());
                }
                Some(&n) if n == batch.pulses.len() as u64 => {}
                Some(&n) => tracing::error!(
                    batch_id = batch.batch_id,
                    present = n,
                    spooled = batch.pulses.len(),
                    "spooled batch partly present; not inserting it again"
                ),
            }
        }
        insert(&self.db, &missing).await?;
        for (path, _) in &group {
            self.spool.remove(path)?;
        }
        tracing::info!(
            batches = group.len(),
            already_present = present.len(),
            rows = missing.pulses.len(),
            "spooled batches replayed"
        );
        Ok(group.len())
    }
}

/// `toYYYYMM` of a Unix time, UTC: the partition a batch lands in.
fn month(secs: u32) -> u32 {
    chrono::DateTime::from_timestamp(i64::from(secs), 0)
        .map(|d| {
            use chrono::Datelike;
            d.year() as u32 * 100 + d.month()
        })
        .unwrap_or(0)
}

async fn insert(db: &Db, batch: &Batch) -> sql::Result<()> {
    sql::languages::insert(db, &batch.languages).await?;
    if !batch.pulses.is_empty() {
        sql::pulses::insert(db, &batch.pulses).await?;
    }
    Ok(())
}

async fn replay_loop(writer: Arc<Writer>, replay_delay: Duration, stop: CancellationToken) {
    // At start every spooled batch is old news: the process that formed it is gone.
    let mut min_age = Duration::ZERO;
    loop {
        if !writer.clickhouse_up.load(Ordering::Relaxed) && writer.db.version().await.is_ok() {
            tracing::info!("clickhouse answers again");
            writer.clickhouse_up.store(true, Ordering::Relaxed);
        }
        if writer.clickhouse_up.load(Ordering::Relaxed)
            && let Err(e) = writer.replay(min_age).await
        {
            tracing::warn!(error = %e, "spool replay interrupted");
        }
        min_age = replay_delay;
        tokio::select! {
            () = tokio::time::sleep(REPLAY_INTERVAL) => {}
            () = stop.cancelled() => return,
        }
    }
}

pub(crate) fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}
