//! How the rollups are doing, for operators: metrics after every run, and
//! `DATA_DIR/rollups.json`, the time and length of the last successful run
//! of each kind, which `codestats doctor` reads (serve may not be running).

use serde::{Deserialize, Serialize};
use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    time::Duration,
};

/// Seconds a rollup run took, by `scope` (`full`, `incremental`).
pub const ROLLUP_DURATION: &str = "codestats_rollup_duration_seconds";
/// When the last run of `scope` succeeded (unix seconds).
pub const ROLLUP_LAST_SUCCESS: &str = "codestats_rollup_last_success_timestamp_seconds";
/// Failed runs, by `scope`.
pub const ROLLUP_FAILURES: &str = "codestats_rollup_failures_total";
/// Seconds the builder took to render, by `kind` (`full`, `users`).
pub const BUILD_DURATION: &str = "codestats_build_duration_seconds";

/// The status file's name in the data dir.
pub const STATUS_FILE: &str = "rollups.json";

/// One kind of run's last success.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LastRun {
    /// Unix seconds when it finished.
    pub finished_at: i64,
    pub seconds: f64,
}

/// The content of [`STATUS_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub full: Option<LastRun>,
    /// Incremental runs and runs for a few users (`codestats build --user`).
    pub incremental: Option<LastRun>,
}

impl Status {
    /// The latest success of any kind.
    pub fn last_success(&self) -> Option<LastRun> {
        match (self.full, self.incremental) {
            (Some(a), Some(b)) => Some(if a.finished_at >= b.finished_at { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The file, or `None` when no run has finished yet.
    pub fn load(path: &Path) -> io::Result<Option<Self>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Written whole or not at all (temporary file, renamed over).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(self).map_err(io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// `scope`'s metrics label.
pub(crate) fn label(full: bool) -> &'static str {
    if full { "full" } else { "incremental" }
}

/// Reports a finished run: metrics, and on success the status file at
/// `file` (if any).
pub(crate) fn record(file: Option<&PathBuf>, full: bool, took: Duration, ok: bool) {
    let scope = label(full);
    if !ok {
        metrics::counter!(ROLLUP_FAILURES, "scope" => scope).increment(1);
        return;
    }
    let now = chrono::Utc::now().timestamp();
    metrics::histogram!(ROLLUP_DURATION, "scope" => scope).record(took.as_secs_f64());
    metrics::gauge!(ROLLUP_LAST_SUCCESS, "scope" => scope).set(now as f64);
    let Some(path) = file else { return };
    let run = LastRun {
        finished_at: now,
        seconds: took.as_secs_f64(),
    };
    let mut status = Status::load(path).ok().flatten().unwrap_or_default();
    if full {
        status.full = Some(run);
    } else {
        status.incremental = Some(run);
    }
    if let Err(e) = status.save(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the rollups' status file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_recorded_beside_the_other_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATUS_FILE);
        assert_eq!(Status::load(&path).unwrap(), None);
        record(Some(&path), true, Duration::from_secs(2), true);
        record(Some(&path), false, Duration::from_millis(10), true);
        record(Some(&path), true, Duration::from_secs(9), false);
        let status = Status::load(&path).unwrap().unwrap();
        assert_eq!(status.full.unwrap().seconds, 2.0);
        assert_eq!(status.incremental.unwrap().seconds, 0.01);
        assert!(status.last_success().is_some());
    }
}
