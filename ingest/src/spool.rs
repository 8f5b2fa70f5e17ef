//! The durable local spool: batches that could not be written to ClickHouse
//! are fsync'd here before their pulses are acknowledged, and replayed into
//! ClickHouse later (at start, and as soon as it answers again).
//!
//! One file per batch, `batch-<received_at>-<batch_id>.json`, written to a
//! temporary name, fsync'd, renamed and the directory fsync'd: a file with
//! the final name is always complete.

use serde::{Deserialize, Serialize};
use sql::{languages::LanguageRow, pulses::PulseRow};
use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

/// A group-commit batch: what one INSERT writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Batch {
    pub batch_id: u64,
    /// Unix seconds; every row's `received_at`.
    pub received_at: u32,
    pub pulses: Vec<PulseRow>,
    /// Language names seen for the first time in this batch.
    pub languages: Vec<LanguageRow>,
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creates) the spool directory and drops half-written files left
    /// by a crash: their pulses were never acknowledged.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a batch durably: when this returns Ok the batch survives a
    /// crash of the process or the machine. When it returns an error the
    /// batch is not in the spool (it will not be replayed), so the caller
    /// may answer with an error.
    pub fn write(&self, batch: &Batch) -> io::Result<()> {
        let name = format!("batch-{:010}-{:016x}", batch.received_at, batch.batch_id);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let path = self.dir.join(format!("{name}.json"));
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&serde_json::to_vec(batch).map_err(io::Error::other)?)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, &path)?;
        if let Err(e) = fs::File::open(&self.dir).and_then(|d| d.sync_all()) {
            // Renamed but not durable: take it back rather than leave a
            // batch that would be replayed after an error answer.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(())
    }

    /// Spooled batches, oldest first.
    pub fn pending(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    pub fn read(path: &Path) -> io::Result<Batch> {
        serde_json::from_slice(&fs::read(path)?).map_err(io::Error::other)
    }

    pub fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: u64, received_at: u32) -> Batch {
        Batch {
            batch_id: id,
            received_at,
            pulses: vec![PulseRow {
                pulse_id: 1,
                batch_id: id,
                user_id: 2,
                machine_id: 3,
                coded_at: received_at - 5,
                utc_offset: -90,
                language: "Rust".into(),
                xp: 42,
                received_at,
            }],
            languages: vec![],
        }
    }

    #[test]
    fn round_trip_in_order_and_stale_temp_files_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("batch-x.tmp"), b"half").unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert!(!dir.path().join("batch-x.tmp").exists());
        spool.write(&batch(9, 200)).unwrap();
        spool.write(&batch(1, 100)).unwrap();
        let pending = spool.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(Spool::read(&pending[0]).unwrap(), batch(1, 100));
        assert_eq!(Spool::read(&pending[1]).unwrap(), batch(9, 200));
        spool.remove(&pending[0]).unwrap();
        assert_eq!(spool.pending().unwrap().len(), 1);
    }
}
