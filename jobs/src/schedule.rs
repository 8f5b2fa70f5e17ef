//! The schedule inside `codestats serve`: an incremental run every few
//! seconds, a full run every night. Runs never overlap (a tick that finds a
//! run in progress is skipped); a failed run is logged and the next tick
//! tries again.

use crate::rollup::{Rollups, Scope};
use std::{
    sync::{Arc, Weak},
    time::Duration,
};
use tokio_cron_scheduler::{Job, JobScheduler};

/// Seconds between incremental runs (`CODESTATS_ROLLUP_INTERVAL_SECS`).
pub const DEFAULT_INCREMENTAL_SECS: u64 = 30;
/// When the nightly full run starts (cron, UTC, with seconds).
pub const FULL_RUN_CRON: &str = "0 30 3 * * *";

async fn tick(rollups: Weak<Rollups>, scope: Scope) {
    // The schedule does not keep the rollups (and their ClickHouse
    // connections) alive once `serve` has let go of them.
    let Some(rollups) = rollups.upgrade() else {
        return;
    };
    match rollups.try_run(scope.clone()).await {
        None => tracing::debug!(?scope, "rollup skipped: a run is in progress"),
        Some(Ok(_)) => {}
        Some(Err(e)) => tracing::error!(
            ?scope,
            error = format!("{e:#}"),
            "rollup failed; next tick retries"
        ),
    }
}

/// Starts the schedule; keep the scheduler and `shutdown` it when done.
pub async fn start(rollups: Arc<Rollups>, every: Duration) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    let r = Arc::downgrade(&rollups);
    scheduler
        .add(Job::new_repeated_async(every, move |_, _| {
            Box::pin(tick(r.clone(), Scope::Incremental))
        })?)
        .await?;
    let r = Arc::downgrade(&rollups);
    scheduler
        .add(Job::new_async(FULL_RUN_CRON, move |_, _| {
            Box::pin(tick(r.clone(), Scope::Full))
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
