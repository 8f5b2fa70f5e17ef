//! `codestats import`: each format round-trips on a fixture, a second
//! import changes nothing, and the report says what happened.

mod common;

use common::{codestats, fails, ok};
use sql::rollups::Users;

const WAKATIME: &str = "tests/fixtures/wakatime-export.json";
const WAKAPI: &str = "tests/fixtures/wakapi-heartbeats.json";
const CODE_STATS: &str = "tests/fixtures/code-stats-pulses.csv";

/// `codestats import` into a fresh data dir, without rebuilding pages.
async fn import(database: &str, args: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut all = vec!["--data-dir", data.path().to_str().unwrap(), "import"];
    all.extend_from_slice(args);
    all.push("--no-build");
    ok(codestats(database, &all).await)
}

fn count(report: &str, what: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{what}:")))
        .unwrap_or_else(|| panic!("no {what} in {report}"))
        .trim()
        .parse()
        .unwrap()
}

/// Everything stored for a user, as text, to compare before and after.
async fn stored(db: &sql::Db, user_id: u64) -> String {
    let mut out = String::new();
    for query in [
        "SELECT * FROM heartbeats WHERE user_id = ? ORDER BY time, time_ms, heartbeat_id",
        "SELECT * FROM pulses WHERE user_id = ? ORDER BY coded_at, language, machine_id",
        "SELECT * FROM xp_hourly WHERE user_id = ? ORDER BY local_date, local_hour, language, machine_id",
    ] {
        let bytes = db
            .client()
            .query(query)
            .bind(user_id)
            .fetch_bytes("TSV")
            .unwrap()
            .collect()
            .await
            .unwrap();
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    out
}

async fn user(db: &sql::Db, name: &str) -> u64 {
    sql::accounts::add_user(db, name, "", false)
        .await
        .unwrap()
        .user_id
}

async fn seconds_by_language(db: &sql::Db, user_id: u64) -> Vec<(String, u64)> {
    let rows = sql::coding::durations(
        db,
        &Users::Only(&[user_id]),
        0,
        u16::MAX,
        sql::coding::DEFAULT_KEYSTROKE_TIMEOUT,
    )
    .await
    .unwrap();
    let mut sums = std::collections::BTreeMap::<String, u64>::new();
    for r in rows {
        *sums.entry(r.language).or_default() += r.millis;
    }
    sums.into_iter().map(|(l, ms)| (l, ms / 1000)).collect()
}

#[tokio::test]
async fn wakatime_export_round_trips_and_imports_once() {
    let db = sql::test_db!();
    let id = user(&db, "waka").await;
    let report = import(db.database(), &[WAKATIME, "--user", "waka"]).await;
    assert_eq!(count(&report, "read"), 8, "{report}");
    assert_eq!(count(&report, "imported"), 6, "{report}");
    assert_eq!(count(&report, "duplicate"), 1, "{report}");
    assert_eq!(count(&report, "rejected"), 1, "{report}");
    assert!(report.contains("1 time must be Unix seconds"), "{report}");
    // 2024-03-01: 120 + 180 + 60.5 s of Rust (the gap before the Python
    // heartbeat counts for Rust); 2024-03-02: 600 s ("rust" is Rust).
    assert_eq!(
        seconds_by_language(&db, id).await,
        [("Rust".to_owned(), 960)]
    );

    // (entity, project, machine, editor)
    let kept: Vec<(String, String, String, String)> = db
        .client()
        .query("SELECT entity, project, machine, editor FROM heartbeats WHERE user_id = ?")
        .bind(id)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(kept.len(), 6);
    assert!(
        kept.iter()
            .all(|k| k.0.is_empty() && k.2 == "import" && k.3 == "Unknown")
    );
    assert!(kept.iter().any(|k| k.1 == "site"));

    let before = stored(&db, id).await;
    let again = import(db.database(), &[WAKATIME, "--user", "waka"]).await;
    assert_eq!(count(&again, "imported"), 0, "{again}");
    assert_eq!(count(&again, "duplicate"), 7, "{again}");
    assert_eq!(stored(&db, id).await, before);
}

#[tokio::test]
async fn wakapi_export_round_trips_and_imports_once() {
    let db = sql::test_db!();
    let id = user(&db, "wakapi").await;
    let report = import(
        db.database(),
        &[WAKAPI, "--user", "wakapi", "--format", "wakapi"],
    )
    .await;
    assert_eq!(
        (
            count(&report, "read"),
            count(&report, "imported"),
            count(&report, "rejected")
        ),
        (5, 4, 1),
        "{report}"
    );
    // 90 + 110 s in Neovim, 30 s in VS Code, all Go.
    assert_eq!(seconds_by_language(&db, id).await, [("Go".to_owned(), 230)]);
    let rows = sql::coding::durations(
        &db,
        &Users::Only(&[id]),
        0,
        u16::MAX,
        sql::coding::DEFAULT_KEYSTROKE_TIMEOUT,
    )
    .await
    .unwrap();
    let neovim: u64 = rows
        .iter()
        .filter(|r| r.editor == "Neovim")
        .map(|r| r.millis)
        .sum();
    assert_eq!(neovim, 200_000);
    assert!(rows.iter().all(|r| r.machine == "desk" && r.os == "Linux"));

    let before = stored(&db, id).await;
    let again = import(
        db.database(),
        &[WAKAPI, "--user", "wakapi", "--format", "wakapi"],
    )
    .await;
    assert_eq!(
        (count(&again, "imported"), count(&again, "duplicate")),
        (0, 4)
    );
    assert_eq!(stored(&db, id).await, before);
}

#[tokio::test]
async fn code_stats_csv_round_trips_and_imports_once() {
    let db = sql::test_db!();
    let id = user(&db, "cs").await;
    let report = import(db.database(), &[CODE_STATS, "--user", "cs"]).await;
    assert_eq!(
        (
            count(&report, "read"),
            count(&report, "imported"),
            count(&report, "rejected")
        ),
        (6, 4, 2),
        "{report}"
    );
    assert!(
        report.contains("1 amount is not a whole number"),
        "{report}"
    );
    assert!(
        report.contains("1 sent_at is not an RFC 3339 time"),
        "{report}"
    );

    // Back out through the export: the same rows as the file's good ones.
    let exported: Vec<sql::export::ExportRow> = {
        let mut cursor = sql::export::user_pulses(&db, id).unwrap();
        let mut rows = Vec::new();
        while let Some(row) = cursor.next().await.unwrap() {
            rows.push(row);
        }
        rows
    };
    let machines = sql::accounts::machines::of_user(&db, id).await.unwrap();
    let name_of = |machine_id: u64| {
        machines
            .iter()
            .find(|m| m.machine_id == machine_id)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    let mut got: Vec<(u32, i16, String, String, u32)> = exported
        .iter()
        .map(|r| {
            (
                r.coded_at,
                r.utc_offset,
                r.language.clone(),
                name_of(r.machine_id),
                r.xp,
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                1_709_287_200,
                120,
                "Markdown".to_owned(),
                "laptop".to_owned(),
                7
            ),
            (
                1_709_287_200,
                120,
                "Rust".to_owned(),
                "laptop".to_owned(),
                42
            ),
            (
                1_709_287_500,
                120,
                "Rust".to_owned(),
                "desktop".to_owned(),
                100
            ),
            (
                1_709_422_200,
                120,
                "C, the language".to_owned(),
                "laptop".to_owned(),
                5
            ),
        ]
    );
    // The hourly aggregates agree with the pulses, and the machines the file
    // named exist, inactive (their tokens were never shown).
    let xp: u64 = db
        .client()
        .query("SELECT sum(xp) FROM xp_hourly WHERE user_id = ?")
        .bind(id)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(xp, 154);
    assert_eq!(machines.len(), 2);
    assert!(machines.iter().all(|m| m.active == 0));

    let before = stored(&db, id).await;
    let again = import(db.database(), &[CODE_STATS, "--user", "cs"]).await;
    assert_eq!(
        (count(&again, "imported"), count(&again, "duplicate")),
        (0, 4)
    );
    assert_eq!(stored(&db, id).await, before);
}

#[tokio::test]
async fn refusals_are_clear() {
    let db = sql::test_db!();
    let d = db.database();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    fails(
        codestats(
            d,
            &["--data-dir", dir, "import", WAKATIME, "--user", "nobody"],
        )
        .await,
        &["no such user: nobody"],
    );
    user(&db, "someone").await;
    for (file, format, expected) in [
        (
            "tests/fixtures/missing.json",
            None,
            "cannot read tests/fixtures/missing.json",
        ),
        (
            CODE_STATS,
            Some("wakatime"),
            "not a WakaTime or Wakapi export",
        ),
        (WAKATIME, Some("code-stats"), "not a Code::Stats CSV export"),
        (WAKATIME, Some("xml"), "unknown format"),
    ] {
        let mut args = vec!["--data-dir", dir, "import", file, "--user", "someone"];
        if let Some(format) = format {
            args.extend(["--format", format]);
        }
        fails(codestats(d, &args).await, &[expected]);
    }
}
