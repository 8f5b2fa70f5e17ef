//! Moving the spool of versions before the log into the log, once, at start.
//!
//! Those versions wrote a batch that ClickHouse did not take to
//! `DATA_DIR/spool/batch-*.json` (one batch id and `received_at` per file).
//! Each such batch is looked up in ClickHouse: there already (its INSERT
//! landed after all), the file is deleted; absent, its pulses are appended
//! to the log, then the file is deleted. While ClickHouse cannot be asked,
//! the files stay for the next start.

use crate::log::{Log, record::Record};
use serde::Deserialize;
use sql::{Db, languages::LanguageRow, pulses::PulseRow};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Batch {
    batch_id: u64,
    received_at: u32,
    pulses: Vec<PulseRow>,
    languages: Vec<LanguageRow>,
}

pub async fn import_spool(db: &Db, log: &Log, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "tmp"))
        .collect();
    files.sort();
    for path in files {
        if path.extension().is_some_and(|e| e == "tmp") {
            // Half-written by a crash: never acknowledged.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        match import(db, log, &path).await {
            Ok(outcome) => {
                tracing::info!(file = %path.display(), outcome, "legacy spool batch moved");
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::error!(error = %e, file = %path.display(), "cannot delete a moved spool batch");
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "legacy spool kept for the next start");
                return;
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

async fn import(db: &Db, log: &Log, path: &Path) -> Result<&'static str, ImportError> {
    let batch: Batch = serde_json::from_slice(&std::fs::read(path)?)?;
    let mut users: Vec<u64> = batch.pulses.iter().map(|p| p.user_id).collect();
    users.sort_unstable();
    users.dedup();
    users.truncate(8);
    if !batch.pulses.is_empty()
        && sql::blocks::pulses_landed(db, batch.batch_id, batch.received_at, &users).await?
    {
        return Ok("already in clickhouse");
    }
    let rows = batch
        .pulses
        .into_iter()
        .map(|p| PulseRow {
            batch_id: 0,
            received_at: 0,
            ..p
        })
        .collect();
    let record = Record {
        rows,
        languages: batch.languages,
    };
    log.append(record.encode())
        .await
        .map_err(ImportError::Log)?;
    Ok("appended to the log")
}

#[derive(Debug, thiserror::Error)]
enum ImportError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("unreadable spool batch: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] sql::Error),
    #[error(transparent)]
    Log(crate::log::AppendError),
}
