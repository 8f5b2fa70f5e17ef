//! Where dumps live: `DIR/codestats-YYYYMMDDTHHMMSSZ/` (UTC, when the dump
//! began), written as `DIR/.codestats-YYYYMMDDTHHMMSSZ.partial/` and
//! renamed once complete, so a directory under the final name is always a
//! whole dump. One backup at a time writes to a `DIR` ([`BackupLock`]),
//! which is what lets [`prune`] remove partial directories: under the lock,
//! any that exists was left by a backup that died.

use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::{
    fs,
    path::{Path, PathBuf},
};

/// A complete dump's directory name: this, then the stamp.
pub const DUMP_PREFIX: &str = "codestats-";
/// `strftime` pattern of the stamp (UTC).
const STAMP: &str = "%Y%m%dT%H%M%SZ";
/// A dump being written: `.codestats-STAMP.partial`.
const PARTIAL_PREFIX: &str = ".codestats-";
const PARTIAL_SUFFIX: &str = ".partial";
/// The lock file in `DIR` held by the backup writing there.
pub const LOCK_FILE: &str = ".codestats-backup.lock";

/// `codestats-20261126T042005Z`.
pub fn dump_name(at: DateTime<Utc>) -> String {
    format!("{DUMP_PREFIX}{}", at.format(STAMP))
}

fn partial_name(at: DateTime<Utc>) -> String {
    format!("{PARTIAL_PREFIX}{}{PARTIAL_SUFFIX}", at.format(STAMP))
}

fn is_stamp(s: &str) -> bool {
    s.len() == "20261126T042005Z".len() && NaiveDateTime::parse_from_str(s, STAMP).is_ok()
}

/// Whether `name` is a complete dump's directory name.
pub fn is_dump_name(name: &str) -> bool {
    name.strip_prefix(DUMP_PREFIX).is_some_and(is_stamp)
}

fn is_partial_name(name: &str) -> bool {
    name.strip_prefix(PARTIAL_PREFIX)
        .and_then(|s| s.strip_suffix(PARTIAL_SUFFIX))
        .is_some_and(is_stamp)
}

/// An exclusive OS lock (`flock`) on `DIR/.codestats-backup.lock`, held
/// while a backup writes to `DIR`; released when dropped or when the
/// process ends.
#[derive(Debug)]
pub struct BackupLock {
    dir: PathBuf,
    _file: fs::File,
}

impl BackupLock {
    /// Creates `dir` if needed and takes its lock; refuses when another
    /// backup holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::file(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                dir: dir.to_owned(),
                _file: file,
            }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Invalid(format!(
                "another backup is writing to {}",
                dir.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(Error::file(&path, e)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the empty partial directory of a dump begun `at`.
    pub fn start(&self, at: DateTime<Utc>) -> Result<PathBuf> {
        let done = self.dir.join(dump_name(at));
        if done.exists() {
            return Err(Error::Invalid(format!(
                "{} already exists: one backup per second",
                done.display()
            )));
        }
        let partial = self.dir.join(partial_name(at));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(|e| Error::file(&partial, e))?;
        }
        fs::create_dir(&partial).map_err(|e| Error::file(&partial, e))?;
        Ok(partial)
    }

    /// Empties a partial directory, for another attempt.
    pub fn clear(&self, partial: &Path) -> Result<()> {
        fs::remove_dir_all(partial).map_err(|e| Error::file(partial, e))?;
        fs::create_dir(partial).map_err(|e| Error::file(partial, e))
    }

    /// Removes a partial directory that will not be finished.
    pub fn abandon(&self, partial: &Path) {
        if let Err(e) = fs::remove_dir_all(partial) {
            tracing::warn!(dir = %partial.display(), error = %e, "cannot remove an unfinished dump");
        }
    }

    /// Makes the dump in `partial` (its files fsync'd already) complete:
    /// fsyncs the directory, renames it to `codestats-STAMP` and fsyncs
    /// `DIR`. Returns the dump's path.
    pub fn finish(&self, partial: &Path, at: DateTime<Utc>) -> Result<PathBuf> {
        sync_dir(partial)?;
        let done = self.dir.join(dump_name(at));
        if done.exists() {
            return Err(Error::Invalid(format!("{} already exists", done.display())));
        }
        fs::rename(partial, &done).map_err(|e| Error::file(&done, e))?;
        sync_dir(&self.dir)?;
        Ok(done)
    }

    /// Keeps the newest `keep` complete dumps in `DIR` and removes older
    /// ones (only directories named `codestats-STAMP` that hold a
    /// manifest) and every partial directory. Returns what it removed.
    pub fn prune(&self, keep: usize) -> Result<Vec<PathBuf>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::file(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::file(&self.dir, e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let has_manifest = super::Manifest::path(&entry.path()).is_file();
            entries.push((name, has_manifest));
        }
        let mut removed = Vec::new();
        for name in to_remove(&entries, keep) {
            let path = self.dir.join(&name);
            fs::remove_dir_all(&path).map_err(|e| Error::file(&path, e))?;
            tracing::info!(dump = %path.display(), "old dump removed");
            removed.push(path);
        }
        if !removed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// Of the directories `(name, holds a manifest)` in a backup directory,
/// those to remove so that the newest `keep` dumps stay: partial ones and
/// the older complete ones. Stamps sort as the times they stand for.
fn to_remove(entries: &[(String, bool)], keep: usize) -> Vec<String> {
    let mut dumps: Vec<&str> = entries
        .iter()
        .filter(|(name, manifest)| *manifest && is_dump_name(name))
        .map(|(name, _)| name.as_str())
        .collect();
    dumps.sort_unstable();
    let old = dumps.len().saturating_sub(keep);
    let mut remove: Vec<String> = entries
        .iter()
        .filter(|(name, _)| is_partial_name(name))
        .map(|(name, _)| name.clone())
        .collect();
    remove.extend(dumps[..old].iter().map(|s| (*s).to_owned()));
    remove
}

/// fsyncs a directory, so the names in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::file(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn names_carry_the_utc_stamp() {
        let t = at(1_764_130_805); // 2025-11-26 04:20:05 UTC
        assert_eq!(dump_name(t), "codestats-20251126T042005Z");
        assert_eq!(partial_name(t), ".codestats-20251126T042005Z.partial");
        assert!(is_dump_name(&dump_name(t)));
        assert!(is_partial_name(&partial_name(t)));
        for not in [
            "codestats-20251126T042005",
            "codestats-20251126T042005Z.old",
            "codestats-2025112xT042005Z",
            "codestats-20251326T042005Z",
            "xcodestats-20251126T042005Z",
            ".codestats-20251126T042005Z",
            "codestats-20251126T042005Z.partial",
        ] {
            assert!(!is_dump_name(not), "{not}");
        }
        assert!(!is_partial_name("codestats-20251126T042005Z"));
    }

    /// Each case: the directory names (and whether they hold a manifest),
    /// how many to keep, and what goes.
    #[test]
    fn keeps_the_newest_complete_dumps() {
        let a = "codestats-20250101T000000Z";
        let b = "codestats-20250102T000000Z";
        let c = "codestats-20251231T235959Z";
        let partial = ".codestats-20260101T000000Z.partial";
        type Case<'a> = (&'a [(&'a str, bool)], usize, &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[(c, true), (a, true), (b, true)], 2, &[a]),
            (&[(c, true), (a, true), (b, true)], 1, &[a, b]),
            (&[(c, true), (a, true), (b, true)], 3, &[]),
            (&[(c, true), (a, true)], 5, &[]),
            // Without a manifest it is not a dump of ours: left alone,
            // and not counted.
            (&[(c, true), (a, false), (b, true)], 1, &[b]),
            // Partial directories go whatever is kept.
            (&[(partial, false), (c, true)], 1, &[partial]),
            // Other names stay.
            (
                &[("codestats-latest", true), ("photos", false), (c, true)],
                1,
                &[],
            ),
        ];
        for (entries, keep, expected) in cases {
            let entries: Vec<(String, bool)> =
                entries.iter().map(|(n, m)| (n.to_string(), *m)).collect();
            let mut got = to_remove(&entries, *keep);
            got.sort();
            let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            expected.sort();
            assert_eq!(got, expected, "{entries:?} keep {keep}");
        }
    }

    #[test]
    fn a_dump_is_renamed_when_finished_and_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let lock = BackupLock::acquire(&dir.path().join("backups")).unwrap();
        let mut done = Vec::new();
        for secs in [1_000_000_000, 1_000_000_100, 1_000_000_050] {
            let partial = lock.start(at(secs)).unwrap();
            fs::write(partial.join("manifest.json"), b"{}").unwrap();
            done.push(lock.finish(&partial, at(secs)).unwrap());
        }
        assert!(lock.start(at(1_000_000_000)).is_err(), "the name is taken");
        let left_over = lock.start(at(1_000_000_200)).unwrap();
        let other = lock.dir().join("notes");
        fs::create_dir(&other).unwrap();

        let removed = lock.prune(2).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(!done[0].exists() && !left_over.exists());
        assert!(done[1].exists() && done[2].exists() && other.exists());
        assert!(lock.dir().join(LOCK_FILE).exists());
    }

    #[test]
    fn one_backup_at_a_time_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = BackupLock::acquire(dir.path()).unwrap();
        let err = BackupLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("another backup is writing to"), "{err}");
        drop(first);
        BackupLock::acquire(dir.path()).unwrap();
    }
}
