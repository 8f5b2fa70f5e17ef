//! One `codestats serve` per data dir, enforced with an OS lock.

use anyhow::{Context, bail};
use std::{
    fs::{self, File, TryLockError},
    path::Path,
};

/// The file in the data dir that a running `serve` holds locked.
pub const SERVE_LOCK_FILE: &str = "serve.lock";

/// An exclusive OS lock (`flock`) on `DATA_DIR/serve.lock`, held for as
/// long as `serve` runs; the kernel releases it when the process ends,
/// however it ends.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// Whether a `serve` holds the lock on `data_dir` now.
pub fn held(data_dir: &Path) -> bool {
    match fs::File::open(data_dir.join(SERVE_LOCK_FILE)) {
        Ok(file) => matches!(file.try_lock(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

impl ServeLock {
    /// Takes the lock, or fails at once if another `serve` holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let path = data_dir.join(SERVE_LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(
                "another codestats serve is running on data dir {}",
                data_dir.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}
