//! `codestats import FILE --user NAME`: a user's history from a WakaTime,
//! Wakapi or Code::Stats export, with a progress bar and a report.

use crate::{config::Config, output::outln, store::Store};
use anyhow::Context;
use ingest::import::{Format, Options, Report};
use jobs::Scope;
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

pub async fn run(
    config: &Config,
    store: &Store,
    file: &Path,
    username: &str,
    format: Option<Format>,
    machine: String,
    no_build: bool,
) -> anyhow::Result<()> {
    let user = sql::accounts::find_user(&store.db, username)
        .await?
        .with_context(|| format!("no such user: {username}"))?;
    let format = format.unwrap_or_else(|| {
        if file
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Format::CodeStats
        } else {
            Format::Wakatime
        }
    });
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let options = Options {
        user,
        machine,
        store_entities: config.ingest.store_entities,
    };

    // The bar draws on stderr when it is a terminal, and not at all else.
    let bar = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let read = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (bar, read) = (bar.clone(), read.clone());
        tokio::spawn(async move {
            loop {
                bar.set_position(read.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let result = ingest::import::import(&store.db, file, format, &options, read.clone()).await;
    ticker.abort();
    bar.set_position(read.load(Ordering::Relaxed));
    bar.finish_and_clear();
    let report = result.with_context(|| format!("cannot import {}", file.display()))?;
    print_report(&report)?;

    if !no_build && report.imported > 0 {
        let rollups = super::build::rollups(config, store)?;
        rollups
            .run(Scope::Users(vec![username.to_owned()]))
            .await
            .context("imported; rebuilding the user's pages failed (run `codestats build`)")?;
        outln!("pages of {username} rebuilt")?;
    }
    Ok(())
}

fn print_report(report: &Report) -> anyhow::Result<()> {
    outln!("read:      {}", report.read)?;
    outln!("imported:  {}", report.imported)?;
    outln!("duplicate: {}", report.duplicate)?;
    outln!("rejected:  {}", report.rejected_total())?;
    for (reason, n) in &report.rejected {
        outln!("  {n} {reason}")?;
    }
    Ok(())
}
