//! Reading the log forward from a position, across segments: the shipper's
//! side.

use super::{Position, segment};
use std::{
    io,
    path::{Path, PathBuf},
};

/// A reading position that keeps its segment open between calls.
pub struct Cursor {
    dir: PathBuf,
    at: Position,
    /// The open segment and the offset it may be read up to.
    reader: Option<(segment::Reader, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Bytes before the durable end that are not a valid record: the disk
    /// changed what was written.
    #[error("ingest log segment {segment} is damaged at byte {offset}")]
    Damaged { segment: u64, offset: u64 },
}

impl Cursor {
    pub fn new(dir: &Path, at: Position) -> Self {
        Self {
            dir: dir.to_owned(),
            at,
            reader: None,
        }
    }

    /// Where the next record starts (or the end of the last one read).
    pub fn position(&self) -> Position {
        self.at
    }

    /// The next record before `until` (a durable end) and the position just
    /// past it; `None` at `until`.
    pub fn next(&mut self, until: Position) -> Result<Option<(Vec<u8>, Position)>, ReadError> {
        loop {
            if self.at >= until {
                return Ok(None);
            }
            if self.at.offset < segment::HEADER_LEN {
                self.at.offset = segment::HEADER_LEN;
                self.reader = None;
                continue;
            }
            // A closed segment is read to its end; the active one only up
            // to the durable end.
            let limit = if self.at.segment < until.segment {
                u64::MAX
            } else {
                until.offset
            };
            if self.reader.as_ref().is_some_and(|(_, l)| *l < limit) {
                self.reader = None;
            }
            let reader = match &mut self.reader {
                Some((r, _)) => r,
                None => match segment::Reader::open(
                    &segment::path(&self.dir, self.at.segment),
                    self.at.offset,
                    limit,
                ) {
                    Ok(r) => &mut self.reader.insert((r, limit)).0,
                    // A segment that is gone was released or set aside.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.skip_segment(until)?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            match reader.read_next()? {
                segment::Next::Record(payload, end) => {
                    self.at.offset = end;
                    return Ok(Some((payload, self.at)));
                }
                segment::Next::End if self.at.segment < until.segment => {
                    self.skip_segment(until)?;
                }
                segment::Next::End | segment::Next::Invalid(_) => {
                    return Err(ReadError::Damaged {
                        segment: self.at.segment,
                        offset: self.at.offset,
                    });
                }
            }
        }
    }

    /// Moves to the start of the first segment after the current one.
    pub fn skip_segment(&mut self, until: Position) -> io::Result<()> {
        let next = segment::list(&self.dir)?
            .into_iter()
            .find(|id| *id > self.at.segment)
            .unwrap_or(until.segment.max(self.at.segment + 1));
        self.at = Position {
            segment: next,
            offset: segment::HEADER_LEN,
        };
        self.reader = None;
        Ok(())
    }
}

/// Records between `from` and `until`: at most `max_records`, stopping once
/// `max_bytes` of payload are read.
#[derive(Debug, Default)]
pub struct Chunk {
    pub payloads: Vec<Vec<u8>>,
    pub end: Position,
}

pub fn read(
    dir: &Path,
    from: Position,
    until: Position,
    max_records: usize,
    max_bytes: u64,
) -> Result<Chunk, ReadError> {
    let mut cursor = Cursor::new(dir, from);
    let mut chunk = Chunk {
        payloads: Vec::new(),
        end: from,
    };
    let mut bytes = 0;
    while chunk.payloads.len() < max_records && bytes < max_bytes {
        match cursor.next(until)? {
            Some((payload, end)) => {
                bytes += payload.len() as u64;
                chunk.payloads.push(payload);
                chunk.end = end;
            }
            None => break,
        }
    }
    Ok(chunk)
}
