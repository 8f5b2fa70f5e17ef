//! `codestats doctor`: checks an installation and says what to fix. Every
//! check prints one line (`ok`, `warn` or `FAIL`), a failed one a `fix:`
//! line; the command fails when any check does. It starts nothing and
//! changes nothing: an embedded ClickHouse that is not running is
//! reported, not started.

use crate::{config::Config, output::outln};
use anyhow::Context;
use sql::local_server::{self, LocalServerConfig};

mod store;
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    time::{Duration, SystemTime},
};

/// Below this much free space in the data dir, the log and ClickHouse may
/// soon refuse writes.
pub const MIN_FREE_BYTES: u64 = 1 << 30;
/// …or below this share of the file system.
pub const MIN_FREE_SHARE: f64 = 0.05;
/// The last successful rollup may be this old, or three incremental
/// intervals if that is longer.
pub const ROLLUP_STALE_AFTER: Duration = Duration::from_secs(600);
/// Records waiting in the log while nothing was shipped for this long mean
/// ClickHouse is not taking them.
pub const BACKLOG_STALE_AFTER: Duration = Duration::from_secs(300);
/// Longest a ClickHouse check waits for an answer.
pub const CLICKHOUSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Ok,
    Warn,
    Fail,
}

pub(super) struct Check {
    name: &'static str,
    level: Level,
    detail: String,
    fix: Option<String>,
}

impl Check {
    pub(super) fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(super) fn warn(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            level: Level::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub(super) fn fail(
        name: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            level: Level::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

pub async fn run(config: &Config) -> anyhow::Result<()> {
    let serving = crate::lock::held(&config.data_dir);
    let mut checks = vec![check_config(config)];
    checks.push(if serving {
        Check::ok("serve", "codestats serve is running on this data dir")
    } else {
        Check::warn(
            "serve",
            "codestats serve is not running on this data dir",
            "start it (systemctl start codestats)",
        )
    });
    checks.extend(store::check_clickhouse(config, serving).await);
    checks.push(check_disk(&config.data_dir));
    checks.extend(check_permissions(config));
    checks.extend(check_log(config, serving));
    checks.push(check_rollups(config));

    let mut failed = 0;
    for check in &checks {
        let level = match check.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        outln!("{level:<5} {:<12} {}", check.name, check.detail)?;
        if let (Some(fix), false) = (&check.fix, check.level == Level::Ok) {
            outln!("{:<5} {:<12} fix: {fix}", "", "")?;
        }
    }
    match failed {
        0 => Ok(()),
        1 => anyhow::bail!("1 problem found"),
        n => anyhow::bail!("{n} problems found"),
    }
}

fn check_config(config: &Config) -> Check {
    let problems = crate::config::invalid_values(config);
    if problems.is_empty() {
        Check::ok("config", "every CODESTATS_* setting is valid")
    } else {
        Check::fail(
            "config",
            problems.join("; "),
            "correct these variables (README, \"Configuration\")",
        )
    }
}

fn check_disk(data_dir: &Path) -> Check {
    let stat = match nix::sys::statvfs::statvfs(data_dir) {
        Ok(stat) => stat,
        Err(e) => {
            return Check::fail(
                "disk",
                format!("cannot look at {}: {e}", data_dir.display()),
                "create the data dir, writable by the service's user",
            );
        }
    };
    let block = stat.fragment_size() as u64;
    let free = stat.blocks_available() as u64 * block;
    let total = (stat.blocks() as u64 * block).max(1);
    let share = free as f64 / total as f64;
    let detail = format!(
        "{:.1} GiB free of {:.1} GiB ({:.0} %) in {}",
        free as f64 / (1u64 << 30) as f64,
        total as f64 / (1u64 << 30) as f64,
        share * 100.0,
        data_dir.display()
    );
    if free < MIN_FREE_BYTES || share < MIN_FREE_SHARE {
        Check::fail(
            "disk",
            detail,
            "free space, or move the data dir (ClickHouse and the log stop writing on a full disk)",
        )
    } else {
        Check::ok("disk", detail)
    }
}

/// Files and directories that must be the owner's only.
fn check_permissions(config: &Config) -> Vec<Check> {
    let local = LocalServerConfig::for_data_dir(&config.data_dir);
    let mut private: Vec<(std::path::PathBuf, u32)> = vec![
        (local.credentials_path(), 0o600),
        (local.client_config_path(local_server::WRITER_USER), 0o600),
        (local.client_config_path(local_server::ANALYST_USER), 0o600),
        (local.dir.join("users.xml"), 0o600),
        (local.dir.clone(), 0o700),
        (config.ingest.log_dir.clone(), 0o700),
    ];
    private.retain(|(path, _)| path.exists());
    let mut checks = Vec::new();
    let me = nix::unistd::geteuid().as_raw();
    for (path, mode) in &private {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let bits = meta.permissions().mode() & 0o777;
        if bits & 0o077 != 0 {
            checks.push(Check::fail(
                "permissions",
                format!("{} may be read by others (mode {bits:o})", path.display()),
                format!("chmod {mode:o} {}", path.display()),
            ));
        } else if meta.uid() != me {
            checks.push(Check::fail(
                "permissions",
                format!(
                    "{} belongs to another user (uid {})",
                    path.display(),
                    meta.uid()
                ),
                format!(
                    "chown the data dir to the service's user: {}",
                    path.display()
                ),
            ));
        }
    }
    if let Ok(meta) = std::fs::metadata(&config.data_dir)
        && meta.permissions().mode() & 0o022 != 0
    {
        checks.push(Check::fail(
            "permissions",
            format!(
                "{} may be written by others (mode {:o})",
                config.data_dir.display(),
                meta.permissions().mode() & 0o777
            ),
            format!("chmod go-w {}", config.data_dir.display()),
        ));
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            "permissions",
            match private.len() {
                0 => "no secret files in the data dir yet".to_owned(),
                n => format!("{n} secret files and directories are the owner's only"),
            },
        ));
    }
    checks
}

fn check_log(config: &Config, serving: bool) -> Vec<Check> {
    let dir = &config.ingest.log_dir;
    if !dir.exists() {
        return vec![Check::ok("log", "no ingest log yet")];
    }
    let LogState {
        unshipped,
        in_flight,
        since_saved,
        damaged,
    } = match read_log(dir) {
        Ok(read) => read,
        Err(e) => {
            return vec![Check::fail(
                "log",
                format!("cannot read the ingest log in {}: {e:#}", dir.display()),
                "check the data dir's owner and permissions",
            )];
        }
    };
    let mut checks = Vec::new();
    if !damaged.is_empty() {
        checks.push(Check::fail(
            "log",
            format!("damaged segments set aside: {}", damaged.join(", ")),
            "the records after the damage were not shipped; keep the files for inspection, then remove them",
        ));
    }
    let mib = unshipped as f64 / (1 << 20) as f64;
    let cap = config.ingest.log_max_bytes;
    let now = chrono::Utc::now().timestamp();
    let block_age = in_flight.map(|at| Duration::from_secs((now - i64::from(at)).max(0) as u64));
    let stale = since_saved.is_some_and(|d| d > BACKLOG_STALE_AFTER)
        || block_age.is_some_and(|d| d > BACKLOG_STALE_AFTER);
    checks.push(if unshipped == 0 && in_flight.is_none() {
        Check::ok("log", "ClickHouse holds every acknowledged pulse")
    } else if unshipped > cap / 2 {
        Check::fail(
            "log",
            format!("{mib:.1} MiB wait to be shipped, over half the log's cap ({cap} bytes); past it pulses are refused"),
            "make ClickHouse reachable (see the clickhouse check and serve's log)",
        )
    } else if !serving {
        Check::warn(
            "log",
            format!("{mib:.1} MiB wait to be shipped"),
            "start serve: it ships them first",
        )
    } else if stale {
        Check::fail(
            "log",
            format!(
                "{mib:.1} MiB wait to be shipped and nothing was shipped for over {} min",
                BACKLOG_STALE_AFTER.as_secs() / 60
            ),
            "make ClickHouse reachable (see the clickhouse check and serve's log)",
        )
    } else {
        Check::ok("log", format!("{mib:.1} MiB being shipped"))
    });
    checks
}

/// What the log's files say: bytes not shipped, the `received_at` of the
/// block in flight, time since the shipper last saved its state, and
/// segments set aside as damaged.
struct LogState {
    unshipped: u64,
    in_flight: Option<u32>,
    since_saved: Option<Duration>,
    damaged: Vec<String>,
}

fn read_log(dir: &Path) -> anyhow::Result<LogState> {
    let state = ingest::ship::state::State::load(dir)?;
    let segments = ingest::log::segment::list(dir).context("cannot list the log")?;
    let end = match segments.last() {
        Some(&id) => ingest::log::Position {
            segment: id,
            offset: std::fs::metadata(ingest::log::segment::path(dir, id))?.len(),
        },
        None => state.shipped,
    };
    let since_saved = std::fs::metadata(ingest::ship::state::path(dir))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    let damaged = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".damaged"))
        .collect();
    Ok(LogState {
        unshipped: ingest::metrics::unshipped_bytes(dir, state.shipped, end),
        in_flight: state.intent.map(|i| i.received_at),
        since_saved,
        damaged,
    })
}

fn check_rollups(config: &Config) -> Check {
    let path = config.data_dir.join(jobs::status::STATUS_FILE);
    let status = match jobs::status::Status::load(&path) {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Check::fail(
                "rollups",
                "no rollup has finished yet: the site is not built",
                "start serve, or codestats build",
            );
        }
        Err(e) => {
            return Check::fail(
                "rollups",
                format!("cannot read {}: {e}", path.display()),
                format!("remove {}; the next rollup writes it again", path.display()),
            );
        }
    };
    let stale_after = ROLLUP_STALE_AFTER.max(Duration::from_secs(3 * config.rollup_interval_secs));
    let Some(last) = status.last_success() else {
        return Check::fail(
            "rollups",
            "no rollup has finished yet",
            "start serve, or codestats build",
        );
    };
    let age = (chrono::Utc::now().timestamp() - last.finished_at).max(0) as u64;
    let detail = format!("the last rollup finished {} ago", human(age));
    if age > stale_after.as_secs() {
        Check::fail(
            "rollups",
            format!("{detail} (more than {})", human(stale_after.as_secs())),
            "see serve's log for \"rollup\" errors; codestats build runs one by hand",
        )
    } else {
        Check::ok("rollups", detail)
    }
}

/// `95 s`, `12 min`, `5 h`, `3 d`.
fn human(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s"),
        120..7_200 => format!("{} min", secs / 60),
        7_200..172_800 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_well() {
        assert_eq!(super::human(42), "42 s");
        assert_eq!(super::human(600), "10 min");
        assert_eq!(super::human(10_800), "3 h");
        assert_eq!(super::human(3 * 86_400), "3 d");
    }
}
