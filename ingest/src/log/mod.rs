//! The ingest log: every accepted pulse is appended here and fsync'd before
//! it is acknowledged; the shipper (`crate::ship`) copies it to ClickHouse
//! in large blocks and releases what ClickHouse holds.
//!
//! The log is a directory of segments (`segment.rs`), each appended to by
//! one thread (`appender.rs`) that writes everything queued meanwhile with
//! one `write` and one `fdatasync` (group commit): under load one fsync
//! serves hundreds of requests. At open, the last segment's tail is checked
//! and whatever is not a whole, valid record is cut off: it was being
//! written when the process or machine stopped, so it was never
//! acknowledged.
//!
//! The log's size on disk is capped (`IngestConfig::log_max_bytes`); past
//! it, appends are refused and the request is answered 503 with
//! `Retry-After`, while the shipper catches up.

mod appender;
pub mod reader;
pub mod record;
pub mod segment;

use serde::{Deserialize, Serialize};
use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{mpsc, oneshot, watch};

/// Default cap on the log's size on disk (`CODESTATS_LOG_MAX_BYTES`).
pub const MAX_LOG_BYTES: u64 = 1 << 30;
/// A segment is closed and a new one started past this size (or a quarter
/// of the cap, if smaller).
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// Most bytes written with one fsync.
pub const MAX_GROUP_BYTES: usize = 8 << 20;
/// Appends waiting for the appender before new ones are refused (503)…
pub const QUEUE_CAPACITY: usize = 65_536;
/// …and the bytes they may hold together, so the queue's memory is bounded
/// whatever the size of each pulse.
pub const QUEUE_MAX_BYTES: u64 = 64 << 20;

/// A place in the log: a segment and a byte offset in it. Positions order
/// as the records they follow.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AppendError {
    #[error("the ingest log is full")]
    Full,
    #[error("too many pulses waiting to be logged")]
    Overloaded,
    #[error("the ingest log cannot be written")]
    Failed,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the ingest log {dir}: {source}")]
pub struct OpenError {
    pub dir: PathBuf,
    #[source]
    pub source: io::Error,
}

pub(crate) struct Shared {
    dir: PathBuf,
    /// The end of what is fsync'd: records before it are acknowledged.
    durable: watch::Sender<Position>,
    /// Bytes of every segment file.
    disk_bytes: AtomicU64,
    /// Payload bytes of the appends queued for the appender.
    queued_bytes: AtomicU64,
    max_bytes: u64,
    segment_bytes: u64,
    /// A write could not be taken back: every append is refused.
    failed: std::sync::atomic::AtomicBool,
    /// `disk_bytes` when the last group had appends refused for the cap
    /// (0: the last group fit).
    full_at: AtomicU64,
}

/// Handle on the log; cheap to clone.
#[derive(Clone)]
pub struct Log {
    tx: mpsc::Sender<appender::Message>,
    shared: Arc<Shared>,
    stopped: Arc<tokio::sync::Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Log {
    /// Opens (creates) the log in `dir`, cuts a torn tail off its last
    /// segment, drops segments wholly before `shipped` and starts the
    /// appender thread. Appends waiting longer than `append_timeout` are
    /// refused before they are written.
    pub fn open(
        dir: &Path,
        shipped: Position,
        max_bytes: u64,
        append_timeout: Duration,
    ) -> Result<Self, OpenError> {
        let fail = |source| OpenError {
            dir: dir.to_owned(),
            source,
        };
        create_private_dir(dir).map_err(fail)?;
        let (active, end, disk_bytes) = recover(dir, shipped).map_err(fail)?;
        let segment_bytes = SEGMENT_BYTES.min(max_bytes / 4).max(64 * 1024);
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            durable: watch::Sender::new(end),
            disk_bytes: AtomicU64::new(disk_bytes),
            queued_bytes: AtomicU64::new(0),
            max_bytes,
            segment_bytes,
            failed: std::sync::atomic::AtomicBool::new(false),
            full_at: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (stopped_tx, stopped_rx) = oneshot::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("codestats-log".into())
            .spawn(move || {
                appender::run(rx, active, end, thread_shared, append_timeout);
                let _ = stopped_tx.send(());
            })
            .map_err(fail)?;
        Ok(Self {
            tx,
            shared,
            stopped: Arc::new(tokio::sync::Mutex::new(Some(stopped_rx))),
        })
    }

    /// Appends one record and waits until it is durable; the position just
    /// past it.
    pub async fn append(&self, payload: Vec<u8>) -> Result<Position, AppendError> {
        let (done, wait) = oneshot::channel();
        let len = payload.len() as u64;
        let queued = &self.shared.queued_bytes;
        if queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_MAX_BYTES {
            queued.fetch_sub(len, Ordering::Relaxed);
            return Err(AppendError::Overloaded);
        }
        self.tx
            .try_send(appender::Message::Append(appender::Append {
                payload,
                queued_at: std::time::Instant::now(),
                done,
            }))
            .map_err(|e| {
                queued.fetch_sub(len, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => AppendError::Overloaded,
                    mpsc::error::TrySendError::Closed(_) => AppendError::Failed,
                }
            })?;
        wait.await.unwrap_or(Err(AppendError::Failed))
    }

    /// Writes what is queued, then stops appending; later appends fail.
    pub async fn close(&self) {
        let _ = self.tx.send(appender::Message::Stop).await;
        if let Some(stopped) = self.stopped.lock().await.take() {
            let _ = stopped.await;
        }
    }

    /// The end of the durable records, as it moves.
    pub fn durable(&self) -> watch::Receiver<Position> {
        self.shared.durable.subscribe()
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Bytes the log takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// Why appends are refused now, if they are: `Failed` until the
    /// process restarts, or `Full` while the last group did not fit and the
    /// shipper has not released segments since.
    pub fn refusing(&self) -> Option<AppendError> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Some(AppendError::Failed);
        }
        let at = self.shared.full_at.load(Ordering::Relaxed);
        (at > 0 && self.disk_bytes() >= at).then_some(AppendError::Full)
    }

    /// Deletes the segments wholly before `shipped` (ClickHouse holds their
    /// records). The segment `shipped` is in stays.
    pub fn release(&self, shipped: Position) -> io::Result<()> {
        for id in segment::list(&self.shared.dir)? {
            if id >= shipped.segment {
                break;
            }
            let path = segment::path(&self.shared.dir, id);
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path)?;
            self.shared.disk_bytes.fetch_sub(len, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The log holds every user's pulses, private ones too: its directory is
/// made for the owner only (`codestats doctor` checks an existing one).
pub const LOG_DIR_MODE: u32 = 0o700;

fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(LOG_DIR_MODE)
        .create(dir)
}

/// Readies the log directory: the active segment (the last one, or a new
/// one), the end of its valid records, and the bytes on disk.
fn recover(dir: &Path, shipped: Position) -> io::Result<(u64, Position, u64)> {
    for id in segment::list(dir)? {
        if id < shipped.segment {
            fs::remove_file(segment::path(dir, id))?;
        }
    }
    let ids = segment::list(dir)?;
    let active = match ids.last() {
        Some(&last) => {
            let path = segment::path(dir, last);
            let len = fs::metadata(&path)?.len();
            let valid = segment::valid_len(&path)?;
            if valid < segment::HEADER_LEN {
                // Created but never written: start it again.
                segment::create(dir, last)?;
            } else if valid < len {
                tracing::warn!(
                    segment = last,
                    valid,
                    dropped = len - valid,
                    "ingest log: cut a torn tail (never acknowledged)"
                );
                let file = fs::OpenOptions::new().write(true).open(&path)?;
                file.set_len(valid)?;
                file.sync_all()?;
            }
            last
        }
        None => {
            let id = shipped.segment.max(1);
            segment::create(dir, id)?;
            id
        }
    };
    let end = Position {
        segment: active,
        offset: fs::metadata(segment::path(dir, active))?.len(),
    };
    let mut disk_bytes = 0;
    for id in segment::list(dir)? {
        disk_bytes += fs::metadata(segment::path(dir, id))?.len();
    }
    Ok((active, end, disk_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(dir: &Path, max: u64) -> Log {
        Log::open(dir, Position::default(), max, Duration::from_secs(10)).unwrap()
    }

    #[tokio::test]
    async fn appends_are_durable_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), MAX_LOG_BYTES).await;
        let start = *log.durable().borrow();
        let mut ends = Vec::new();
        for i in 0..100u32 {
            ends.push(log.append(i.to_le_bytes().to_vec()).await.unwrap());
        }
        assert!(ends.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*log.durable().borrow(), *ends.last().unwrap());
        log.close().await;
        assert_eq!(log.append(vec![1]).await, Err(AppendError::Failed));

        let log = open(dir.path(), MAX_LOG_BYTES).await;
        assert_eq!(*log.durable().borrow(), *ends.last().unwrap());
        let chunk = reader::read(
            dir.path(),
            start,
            *ends.last().unwrap(),
            usize::MAX,
            u64::MAX,
        )
        .unwrap();
        let got: Vec<u32> = chunk
            .payloads
            .iter()
            .map(|p| u32::from_le_bytes(p[..4].try_into().unwrap()))
            .collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        log.close().await;
    }

    #[tokio::test]
    async fn an_append_refused_for_waiting_too_long_is_never_written() {
        let dir = tempfile::tempdir().unwrap();
        // Every append has waited longer than nothing at all.
        let log = Log::open(
            dir.path(),
            Position::default(),
            MAX_LOG_BYTES,
            Duration::ZERO,
        )
        .unwrap();
        let before = *log.durable().borrow();
        assert_eq!(
            log.append(b"late".to_vec()).await,
            Err(AppendError::Overloaded)
        );
        log.close().await;
        assert_eq!(*log.durable().borrow(), before);
        let path = segment::path(dir.path(), before.segment);
        assert_eq!(fs::metadata(path).unwrap().len(), segment::HEADER_LEN);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), MAX_LOG_BYTES).await;
        let kept = log.append(b"kept".to_vec()).await.unwrap();
        log.close().await;
        // Half a record, as a crash in the middle of a write leaves it.
        let path = segment::path(dir.path(), kept.segment);
        let mut torn = Vec::new();
        segment::frame(b"never acknowledged", &mut torn);
        torn.truncate(torn.len() - 3);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&torn);
        fs::write(&path, bytes).unwrap();

        let log = open(dir.path(), MAX_LOG_BYTES).await;
        assert_eq!(*log.durable().borrow(), kept);
        assert_eq!(fs::metadata(&path).unwrap().len(), kept.offset);
        let next = log.append(b"next".to_vec()).await.unwrap();
        let chunk = reader::read(dir.path(), Position::default(), next, 10, u64::MAX).unwrap();
        assert_eq!(chunk.payloads, vec![b"kept".to_vec(), b"next".to_vec()]);
        log.close().await;
    }

    #[tokio::test]
    async fn segments_roll_are_released_and_the_cap_refuses() {
        let dir = tempfile::tempdir().unwrap();
        // Segments of 64 KiB; a cap of 256 KiB.
        let log = open(dir.path(), 256 * 1024).await;
        let record = vec![7u8; 10_000];
        let mut last = Position::default();
        let mut refused = None;
        for i in 0..40 {
            match log.append(record.clone()).await {
                Ok(p) => last = p,
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (i, e) = refused.expect("the cap refuses appends");
        assert_eq!(e, AppendError::Full);
        assert_eq!(log.refusing(), Some(AppendError::Full));
        assert!((20..=26).contains(&i), "refused after {i} records");
        assert!(last.segment >= 4, "rolled into {} segments", last.segment);
        assert!(log.disk_bytes() <= 256 * 1024);
        // Releasing everything before the last segment makes room again.
        log.release(last).unwrap();
        assert_eq!(segment::list(dir.path()).unwrap(), vec![last.segment]);
        assert_eq!(log.refusing(), None);
        assert!(log.append(record.clone()).await.is_ok());
        log.close().await;
    }
}
