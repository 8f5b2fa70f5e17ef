//! The spool of versions before the log, shipped once at start.
//!
//! Those versions wrote a batch that ClickHouse did not take to
//! `DATA_DIR/spool/batch-*.json`: one batch id and `received_at` per file,
//! its INSERT possibly landed after all. The shipper takes each file as a
//! block of its own (`ship::Task::ship_legacy`): already in ClickHouse
//! under the batch id (the old INSERT landed), the file is deleted;
//! otherwise it is written as a block whose id is derived from the batch
//! id, with the same exactly-once steps as any block, and then deleted.
//! The derived id is the same at every start, so a crash anywhere in
//! between never writes a batch twice.

use serde::Deserialize;
use sql::{languages::LanguageRow, pulses::PulseRow};
use std::{
    io,
    path::{Path, PathBuf},
};

#[derive(Debug, Deserialize)]
pub struct LegacyBatch {
    pub batch_id: u64,
    pub received_at: u32,
    pub pulses: Vec<PulseRow>,
    pub languages: Vec<LanguageRow>,
}

impl LegacyBatch {
    /// The id the batch is written under by this version: never an id the
    /// old version gave (those are the batch ids themselves).
    pub fn block_id(&self) -> u64 {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("legacy spool batch {}", self.batch_id));
        u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }
}

/// The spooled batch files in `dir`, oldest first; half-written ones (a
/// crash while spooling: never acknowledged) are deleted.
pub fn pending(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => files.push(path),
            Some("tmp") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    files.sort();
    files
}

pub fn read(path: &Path) -> io::Result<LegacyBatch> {
    serde_json::from_slice(&std::fs::read(path)?).map_err(io::Error::other)
}

/// Deletes a shipped batch file durably; the spool directory goes with
/// its last file.
pub fn remove(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        crate::log::segment::sync_dir(dir)?;
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}
