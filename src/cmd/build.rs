//! `codestats build` and `codestats seed`.

use crate::{config::Config, output::outln, store::Store};
use jobs::{Rollups, Scope};
use std::time::Instant;

/// The directory the site is built into and served from.
pub fn site_dir(config: &Config) -> std::path::PathBuf {
    config.site_dir.clone()
}

pub fn rollups(config: &Config, store: &Store) -> anyhow::Result<Rollups> {
    let mut builder =
        builder::Builder::new(site_dir(config))?.with_public_url(config.public_url.clone());
    if let Some(theme) = &config.theme_dir {
        builder = builder.with_theme_dir(theme)?;
    }
    Ok(Rollups::new(store.db.clone(), builder)
        .with_keystroke_timeout(config.ingest.keystroke_timeout)
        .with_status_file(config.data_dir.join(jobs::status::STATUS_FILE)))
}

pub async fn build(
    config: &Config,
    store: &Store,
    full: bool,
    users: Vec<String>,
) -> anyhow::Result<()> {
    let rollups = rollups(config, store)?;
    let scope = if full || users.is_empty() {
        Scope::Full
    } else {
        Scope::Users(users)
    };
    let report = rollups.run(scope).await?;
    for (step, took) in &report.steps {
        eprintln!("{step:<24} {:>8.3} s", took.as_secs_f64());
    }
    eprintln!(
        "{} build: {} profiles, {} files written, {} removed, {:.3} s in all",
        if report.full { "full" } else { "partial" },
        report.profiles,
        report.build.files(),
        report.removed,
        report.total().as_secs_f64()
    );
    outln!("{}", rollups.builder().output_dir().display())?;
    Ok(())
}

pub async fn seed(store: &Store, options: &jobs::seed::SeedOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let report = jobs::seed::seed(&store.db, options).await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "seeded {} users, {} machines, {} pulse rows ({} XP) in {secs:.1} s ({:.0} rows/s)",
        report.users,
        report.machines,
        report.rows,
        report.xp,
        report.rows as f64 / secs
    );
    Ok(())
}
