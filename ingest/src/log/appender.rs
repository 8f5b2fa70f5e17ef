//! The appender thread: group commit into the active segment.
//!
//! It takes the first waiting append, then everything else already queued
//! (up to [`MAX_GROUP_BYTES`]), writes their frames with one `write` and
//! makes them durable with one `fdatasync`, then answers them all. While it
//! syncs, new appends queue up: the next group is larger, so the number of
//! fsyncs per second stays bounded by the disk, not by the request rate.
//!
//! An append whose request went away or waited past the append timeout is
//! answered with an error and not written: an error answer never hides a
//! write. A failed write or sync is cut off the segment again before its
//! appends are answered with an error; if even that fails, the log refuses
//! every later append (the process must be restarted to recover the tail).

use super::{AppendError, MAX_GROUP_BYTES, Position, Shared, segment};
use std::{
    fs::File,
    io::Write,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, oneshot};

pub struct Append {
    pub payload: Vec<u8>,
    pub queued_at: Instant,
    pub done: oneshot::Sender<Result<Position, AppendError>>,
}

pub enum Message {
    Append(Append),
    /// Write what is queued, then end.
    Stop,
}

struct Active {
    id: u64,
    file: File,
    len: u64,
}

pub fn run(
    mut rx: mpsc::Receiver<Message>,
    active: u64,
    end: Position,
    shared: Arc<Shared>,
    timeout: Duration,
) {
    let file = match segment::open_append(&shared.dir, active) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "ingest log: cannot open the active segment");
            return;
        }
    };
    let mut active = Active {
        id: active,
        file,
        len: end.offset,
    };
    let mut buf = Vec::with_capacity(MAX_GROUP_BYTES);
    while let Some(message) = rx.blocking_recv() {
        let mut group = Vec::new();
        let mut bytes = 0;
        match message {
            Message::Append(a) => {
                bytes += a.payload.len();
                group.push(a);
            }
            Message::Stop => rx.close(),
        }
        while bytes < MAX_GROUP_BYTES {
            match rx.try_recv() {
                Ok(Message::Append(a)) => {
                    bytes += a.payload.len();
                    group.push(a);
                }
                Ok(Message::Stop) => rx.close(),
                Err(_) => break,
            }
        }
        shared
            .queued_bytes
            .fetch_sub(bytes as u64, Ordering::Relaxed);
        let group: Vec<Append> = group
            .into_iter()
            .filter_map(|a| {
                if a.done.is_closed() || a.queued_at.elapsed() > timeout {
                    let _ = a.done.send(Err(AppendError::Overloaded));
                    None
                } else {
                    Some(a)
                }
            })
            .collect();
        if group.is_empty() {
            continue;
        }
        if shared.failed.load(Ordering::Relaxed) {
            answer(group, Err(AppendError::Failed));
            continue;
        }
        write_group(&mut active, group, &shared, &mut buf);
    }
    tracing::debug!("ingest log: appender stopped");
}

fn write_group(active: &mut Active, group: Vec<Append>, shared: &Shared, buf: &mut Vec<u8>) {
    // What fits under the cap is written; the rest is refused.
    let disk = shared.disk_bytes.load(Ordering::Relaxed);
    let room = shared.max_bytes.saturating_sub(disk);
    let mut size = 0;
    let mut accepted = Vec::with_capacity(group.len());
    let mut refused = Vec::new();
    for a in group {
        let framed = segment::framed_len(&a.payload);
        if size + framed + segment::HEADER_LEN > room {
            refused.push(a);
        } else {
            size += framed;
            accepted.push(a);
        }
    }
    // Set before the refusals are answered: whoever hears "full" sees it.
    shared.full_at.store(
        if refused.is_empty() { 0 } else { disk.max(1) },
        Ordering::Relaxed,
    );
    answer(refused, Err(AppendError::Full));
    if accepted.is_empty() {
        return;
    }
    if active.len > segment::HEADER_LEN && active.len + size > shared.segment_bytes {
        match segment::create(&shared.dir, active.id + 1) {
            Ok(file) => {
                *active = Active {
                    id: active.id + 1,
                    file,
                    len: segment::HEADER_LEN,
                };
                shared
                    .disk_bytes
                    .fetch_add(segment::HEADER_LEN, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, segment = active.id + 1, "ingest log: cannot start a segment");
                answer(accepted, Err(AppendError::Failed));
                return;
            }
        }
    }
    buf.clear();
    let mut ends = Vec::with_capacity(accepted.len());
    for a in &accepted {
        segment::frame(&a.payload, buf);
        ends.push(active.len + buf.len() as u64);
    }
    let started = std::time::Instant::now();
    match active
        .file
        .write_all(buf)
        .and_then(|()| active.file.sync_data())
    {
        Ok(()) => {
            metrics::histogram!(crate::metrics::LOG_FSYNC).record(started.elapsed().as_secs_f64());
            metrics::histogram!(crate::metrics::LOG_COMMIT_RECORDS).record(accepted.len() as f64);
            active.len += buf.len() as u64;
            shared
                .disk_bytes
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            let segment = active.id;
            shared.durable.send_replace(Position {
                segment,
                offset: active.len,
            });
            for (a, end) in accepted.into_iter().zip(ends) {
                let _ = a.done.send(Ok(Position {
                    segment,
                    offset: end,
                }));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, segment = active.id, "ingest log: write failed; refusing the group");
            // Take the bytes back so the shipper never reads what was
            // answered with an error.
            if let Err(e) = active
                .file
                .set_len(active.len)
                .and_then(|()| active.file.sync_all())
            {
                tracing::error!(error = %e, "ingest log: cannot cut a failed write; refusing every append until restart");
                shared.failed.store(true, Ordering::Relaxed);
            }
            answer(accepted, Err(AppendError::Failed));
        }
    }
}

fn answer(group: Vec<Append>, outcome: Result<Position, AppendError>) {
    for a in group {
        let _ = a.done.send(outcome);
    }
}
