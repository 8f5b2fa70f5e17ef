//! `codestats import` reads a file of any size in flat memory: importing a
//! WakaTime export of 400,000 heartbeats (124 MiB) peaks within
//! [`MAX_GROWTH`] of importing one of 10,000 (3.1 MiB).
//!
//! Memory is the peak resident set (`VmHWM`) of the import process. A
//! reader that held the document or its rows would need at least the
//! file's size for the large one; the streaming reader holds a few chunks
//! of `ingest::import::CHUNK_ROWS` heartbeats.

mod common;

use std::{io::Write, process::Command, time::Duration};

/// Most the large import may peak above the small one.
const MAX_GROWTH: u64 = 48 << 20;

/// A WakaTime data export: `days` days of `per_day` heartbeats a minute
/// apart, entities and projects varied so rows are not all alike.
fn export(path: &std::path::Path, days: u32, per_day: u32) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let start = 1_700_000_000u32;
    write!(out, r#"{{"user": {{"id": "u"}}, "days": ["#).unwrap();
    for day in 0..days {
        if day > 0 {
            write!(out, ",").unwrap();
        }
        write!(out, r#"{{"date": "d{day}", "heartbeats": ["#).unwrap();
        for i in 0..per_day {
            if i > 0 {
                write!(out, ",").unwrap();
            }
            let time = start + day * 86_400 + i * 60;
            write!(
                out,
                r#"{{"time": {time}.25, "entity": "/home/me/src/project{p}/module{m}/file{i}.rs", "type": "file", "category": "coding", "is_write": {w}, "project": "project{p}", "branch": "main", "language": "Rust", "lines": {i}, "lineno": 3, "cursorpos": 9, "dependencies": ["serde", "tokio"], "machine_name_id": "abc", "user_agent_id": "def"}}"#,
                p = i % 7,
                m = i % 13,
                w = i % 2 == 0,
            )
            .unwrap();
        }
        write!(out, "]}}").unwrap();
    }
    write!(out, "]}}").unwrap();
    out.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Runs an import and returns its peak resident memory, in bytes.
async fn import_peak(database: &str, file: &std::path::Path, user: &str) -> u64 {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["--data-dir", data.path().to_str().unwrap(), "import"])
        .arg(file)
        .args(["--user", user, "--no-build"])
        .envs(sql::testing::binary_env(database).await)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("rejected:  0"), "{report}");
    peak
}

#[tokio::test]
async fn memory_stays_flat_whatever_the_file_size() {
    let db = sql::test_db!();
    sql::accounts::add_user(&db, "small", "", false)
        .await
        .unwrap();
    sql::accounts::add_user(&db, "large", "", false)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (dir.path().join("small.json"), dir.path().join("large.json"));
    let small_bytes = export(&small, 10, 1_000);
    let large_bytes = export(&large, 400, 1_000);
    assert!(large_bytes > 2 * MAX_GROWTH, "{large_bytes}");

    let small_peak = import_peak(db.database(), &small, "small").await;
    let large_peak = import_peak(db.database(), &large, "large").await;
    let stored: u64 = db
        .client()
        .query("SELECT count() FROM heartbeats")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(stored, 410_000);
    eprintln!(
        "import peak RSS: {:.1} MiB for {:.1} MiB, {:.1} MiB for {:.1} MiB",
        small_peak as f64 / 1048576.0,
        small_bytes as f64 / 1048576.0,
        large_peak as f64 / 1048576.0,
        large_bytes as f64 / 1048576.0,
    );
    assert!(
        large_peak < small_peak + MAX_GROWTH,
        "peak {large_peak} for the large file, {small_peak} for the small one"
    );
}
