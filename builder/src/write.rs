//! Every output file goes through [`Writer::write_content`].
//!
//! A file is written to a temporary file in its final directory and renamed
//! over the old one, so a reader sees the old or the new file, never half of
//! one. A full build writes into a fresh sibling staging directory that is
//! then swapped with the output directory ([`publish`]). Every build holds
//! the directory's [`SiteLock`], so builds in different processes take turns.

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{BuildReport, Error};

/// What a written file counts as in the [`BuildReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Page,
    Chart,
    Json,
    Asset,
}

/// Writes files below one root directory and counts them.
pub(crate) struct Writer<'r> {
    root: PathBuf,
    report: &'r mut BuildReport,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Refuses any relative path that is not made of plain names only.
pub(crate) fn check_relative(rel: &Path) -> Result<(), Error> {
    let mut any = false;
    for component in rel.components() {
        match component {
            Component::Normal(name) if !name.is_empty() => any = true,
            _ => return Err(Error::UnsafePath(rel.to_path_buf())),
        }
    }
    if any {
        Ok(())
    } else {
        Err(Error::UnsafePath(rel.to_path_buf()))
    }
}

impl<'r> Writer<'r> {
    pub(crate) fn new(root: impl Into<PathBuf>, report: &'r mut BuildReport) -> Self {
        Self {
            root: root.into(),
            report,
        }
    }

    /// Writes `content` at `rel` below the root, atomically.
    pub(crate) fn write_content(
        &mut self,
        rel: &Path,
        content: &[u8],
        kind: Kind,
    ) -> Result<(), Error> {
        check_relative(rel)?;
        let path = self.root.join(rel);
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        write_atomic(&path, content)?;
        match kind {
            Kind::Page => self.report.pages += 1,
            Kind::Chart => self.report.charts += 1,
            Kind::Json => self.report.json += 1,
            Kind::Asset => self.report.assets += 1,
        }
        Ok(())
    }

    /// Removes a file or a directory tree at `rel`, if present.
    pub(crate) fn remove(&mut self, rel: &Path) -> Result<(), Error> {
        check_relative(rel)?;
        let path = self.root.join(rel);
        let result = match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Err(e),
        };
        result.map_err(|e| Error::io("remove", &path, e))?;
        self.report.removed += 1;
        Ok(())
    }

    /// Removes every folder directly in `rel` whose name is not in `keep`
    /// (segments of the names still present); files, and folders whose
    /// name no segment has (hidden ones), stay. Nothing to do when `rel` is
    /// missing.
    pub(crate) fn remove_dirs_except(
        &mut self,
        rel: &Path,
        keep: &HashSet<String>,
    ) -> Result<(), Error> {
        check_relative(rel)?;
        let dir = self.root.join(rel);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("read directory", &dir, e)),
        };
        let mut gone = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && !name.starts_with('.') && !keep.contains(&name) {
                gone.push(name);
            }
        }
        gone.sort();
        for name in gone {
            self.remove(&rel.join(name))?;
        }
        Ok(())
    }
}

/// Writes `path` through a temporary file in the same directory + rename.
fn write_atomic(path: &Path, content: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(content)?;
        file.flush()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write", path, e));
    }
    Ok(())
}

/// A fresh, empty staging directory beside `output`.
pub(crate) fn staging_dir(output: &Path) -> Result<PathBuf, Error> {
    let (parent, name) = beside(output)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let staging = parent.join(format!(
        ".{name}.staging-{}-{nanos}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&staging).map_err(|e| Error::io("create directory", &staging, e))?;
    Ok(staging)
}

/// The folder `output` lives in (created if missing) and `output`'s own
/// name: what the staging directories and the lock beside it are named
/// after.
fn beside(output: &Path) -> Result<(PathBuf, String), Error> {
    let parent = parent_of(output);
    fs::create_dir_all(&parent).map_err(|e| Error::io("create directory", &parent, e))?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::UnsafePath(output.to_path_buf()))?;
    Ok((parent, name))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the finished `staging` directory the `output` directory.
///
/// On Linux the two are exchanged atomically (`renameat2` with
/// `RENAME_EXCHANGE`), so `output` always exists; elsewhere, or on a file
/// system without exchange, `output` is renamed away first and is missing
/// for the instant between two renames. The old tree is then deleted.
pub(crate) fn publish(staging: &Path, output: &Path) -> Result<(), Error> {
    if fs::symlink_metadata(output).is_err() {
        return fs::rename(staging, output).map_err(|e| Error::io("rename", output, e));
    }
    if exchange(staging, output).is_ok() {
        // `staging` now holds the previous site
        return fs::remove_dir_all(staging).map_err(|e| Error::io("remove", staging, e));
    }
    let old = PathBuf::from(format!("{}.old", staging.display()));
    fs::rename(output, &old).map_err(|e| Error::io("rename", output, e))?;
    if let Err(e) = fs::rename(staging, output) {
        // put the previous site back
        let _ = fs::rename(&old, output);
        return Err(Error::io("rename", output, e));
    }
    fs::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(a: &Path, b: &Path) -> Result<(), nix::Error> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(_a: &Path, _b: &Path) -> Result<(), std::io::Error> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// An exclusive OS lock (`flock`) on the file `.NAME.lock` beside the
/// output directory `NAME`, held while one build of it runs; released when
/// dropped, or by the kernel when the process ends. Beside the directory,
/// not in it, because a full build swaps the directory.
#[derive(Debug)]
pub(crate) struct SiteLock {
    _file: fs::File,
}

impl SiteLock {
    /// Takes the lock of `output`, waiting for the build that holds it (in
    /// this process or another) to finish.
    pub(crate) fn acquire(output: &Path) -> Result<Self, Error> {
        let (parent, name) = beside(output)?;
        let path = parent.join(format!(".{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                tracing::warn!(
                    dir = %output.display(),
                    "another build of this site is running; waiting for it to finish"
                );
                file.lock().map_err(|e| Error::io("lock", &path, e))?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        Ok(Self { _file: file })
    }
}

/// Removes staging directories a crashed build of `output` left behind.
/// Called only with the [`SiteLock`] of `output` held, so no other build's
/// staging directory exists.
pub(crate) fn remove_stale_staging(output: &Path) {
    let parent = parent_of(output);
    let Some(name) = output.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.staging-");
    let Ok(entries) = fs::read_dir(&parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            match fs::remove_dir_all(&path) {
                Ok(()) => tracing::warn!(path = %path.display(), "removed stale staging directory"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove stale staging directory")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_must_be_plain() {
        for bad in ["", "..", "../x", "a/../b", "/etc/passwd", ".", "./a"] {
            assert!(check_relative(Path::new(bad)).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b", "users/~2E./index.html"] {
            assert!(check_relative(Path::new(good)).is_ok(), "{good:?}");
        }
    }
}
