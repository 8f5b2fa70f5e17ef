//! `codestats bench rollups`: seeds a throw-away database with synthetic
//! users, then times a full rollup with page rendering and an incremental
//! run over a hundred changed users. Figures go to BENCHMARKS.md.

use crate::{config::Config, output::outln, store::Store};
use anyhow::Context;
use jobs::{Rollups, Scope, seed::SeedOptions};
use std::time::Instant;

/// The database the benchmark creates and drops on the configured server.
pub const BENCH_DATABASE: &str = "codestats_bench";

pub async fn rollups(
    config: &Config,
    store: &Store,
    users: usize,
    days: u32,
    dirty: usize,
) -> anyhow::Result<()> {
    let db = store.db.with_database(BENCH_DATABASE)?;
    db.drop_database().await?;
    sql::migrate::migrate(&db).await?;
    let site = config.data_dir.join("bench-site");
    let _ = std::fs::remove_dir_all(&site);

    let started = Instant::now();
    let seeded = jobs::seed::seed(
        &db,
        &SeedOptions {
            users,
            days,
            seed: 7,
            prefix: "bench".into(),
            private_share: 0.1,
        },
    )
    .await
    .context("seeding failed")?;
    let seed_secs = started.elapsed().as_secs_f64();
    outln!(
        "seed        {} users, {} machines, {} pulse rows in {seed_secs:.1} s ({:.0} rows/s)",
        seeded.users,
        seeded.machines,
        seeded.rows,
        seeded.rows as f64 / seed_secs
    )?;

    let rollups = Rollups::new(db.clone(), builder::Builder::new(&site)?);
    let full = rollups.run(Scope::Full).await?;
    print_run("full run", &full)?;

    // A hundred users send a pulse: the next incremental run finds them
    // through received_at (and the in-process marks, as in serve).
    let all = sql::accounts::list_users(&db).await?;
    let now = chrono::Utc::now().timestamp() as u32;
    let mut rows = Vec::new();
    for user in all.iter().filter(|u| !u.is_private()).take(dirty) {
        let machine_id = sql::accounts::list_machines(&db, user).await?[0].machine_id;
        rows.push(sql::pulses::PulseRow {
            pulse_id: rand_id(now, rows.len()),
            batch_id: 1,
            user_id: user.user_id,
            machine_id,
            coded_at: now - 30,
            utc_offset: 0,
            language: "Rust".into(),
            xp: 42,
            received_at: now,
        });
        rollups.mark_dirty(user.user_id);
    }
    sql::blocks::insert_unshipped(&db, &rows).await?;
    let incremental = rollups.run(Scope::Incremental).await?;
    print_run(&format!("incremental ({} users)", rows.len()), &incremental)?;

    db.drop_database().await?;
    let _ = std::fs::remove_dir_all(&site);
    Ok(())
}

fn rand_id(now: u32, i: usize) -> u64 {
    (u64::from(now) << 20) | i as u64
}

fn print_run(name: &str, report: &jobs::RunReport) -> std::io::Result<()> {
    let total = report.total().as_secs_f64();
    let render = report
        .steps
        .iter()
        .find(|(s, _)| *s == "render site")
        .map(|(_, d)| d.as_secs_f64())
        .unwrap_or(0.0);
    outln!(
        "{name:<28} {total:>7.2} s  profiles {:>6}  files {:>6}  pages/s {:>8.0}",
        report.profiles,
        report.build.files(),
        report.build.pages as f64 / render.max(1e-9),
    )?;
    for (step, took) in &report.steps {
        outln!("    {step:<24} {:>7.3} s", took.as_secs_f64())?;
    }
    Ok(())
}
