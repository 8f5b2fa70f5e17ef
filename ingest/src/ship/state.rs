//! The shipper's durable state, `DATA_DIR/log/shipper.json`: how far
//! ClickHouse holds the log, and the block being written, if any.
//!
//! Written to a temporary file, fsync'd, renamed over the old one and the
//! directory fsync'd: a reader sees the old state or the new one.

use crate::log::{Position, segment};
use serde::{Deserialize, Serialize};
use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

const FILE: &str = "shipper.json";

/// A block whose INSERTs may have started: its id, `received_at` and the
/// log records it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub block_id: u64,
    pub received_at: u32,
    pub from: Position,
    pub to: Position,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Every record before this is in ClickHouse.
    pub shipped: Position,
    /// Written before the block's first INSERT starts, cleared once both of
    /// its INSERTs are known to have landed.
    pub intent: Option<Intent>,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// For another process (`codestats backup`): the time before which every
/// block of the log in `dir` is settled as its `shipper.json` tells — the
/// `received_at` of the block in flight, else `now`. No `shipper.json`:
/// `now`.
pub fn settled_before(dir: &Path, now: u32) -> io::Result<u32> {
    Ok(match State::load(dir)?.intent {
        Some(intent) => intent.received_at.min(now),
        None => now,
    })
}

impl State {
    /// The saved state, or the empty one when there is none yet.
    pub fn load(dir: &Path) -> io::Result<Self> {
        match fs::read(path(dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path(dir).display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&tmp, path(dir))?;
        segment::sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), State::default());
        let state = State {
            shipped: Position {
                segment: 3,
                offset: 99,
            },
            intent: Some(Intent {
                block_id: u64::MAX,
                received_at: 1_700_000_000,
                from: Position {
                    segment: 3,
                    offset: 99,
                },
                to: Position {
                    segment: 4,
                    offset: 8,
                },
            }),
        };
        state.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), state);
        fs::write(path(dir.path()), b"{").unwrap();
        assert!(State::load(dir.path()).is_err());
    }

    #[test]
    fn a_block_in_flight_holds_back_what_is_settled() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(settled_before(dir.path(), 500).unwrap(), 500);
        let mut state = State::default();
        state.save(dir.path()).unwrap();
        assert_eq!(settled_before(dir.path(), 500).unwrap(), 500);
        state.intent = Some(Intent {
            block_id: 1,
            received_at: 400,
            from: Position::default(),
            to: Position::default(),
        });
        state.save(dir.path()).unwrap();
        assert_eq!(settled_before(dir.path(), 500).unwrap(), 400);
        assert_eq!(settled_before(dir.path(), 300).unwrap(), 300);
    }
}
