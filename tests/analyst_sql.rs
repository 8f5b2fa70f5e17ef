//! `codestats sql` run as a user would, against the test ClickHouse: the
//! query library on a hand-made fixture, read-only refusals by the server,
//! the row limit, and the output formats read back with Polars.

use chrono::NaiveDateTime;
use polars::prelude::*;
use sql::{Db, accounts, heartbeats::HeartbeatRow, local_server, pulses::PulseRow};

mod common;

use common::{codestats, fails, ok};

/// Unix seconds of a UTC `YYYY-MM-DD hh:mm:ss`.
fn utc(at: &str) -> u32 {
    NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
        .unwrap()
        .and_utc()
        .timestamp() as u32
}

/// The fixture's pulses: id, user, machine, coded at (UTC), offset (minutes),
/// language, XP. Local times are in the comments.
const PULSES: &[(u64, &str, &str, &str, i16, &str, u32)] = &[
    (1, "alice", "laptop", "2024-01-01 10:00:00", 60, "Rust", 100), // Mon 01-01 11h
    (1, "alice", "laptop", "2024-01-01 10:00:00", 60, "Go", 20),    // same pulse
    (
        2,
        "alice",
        "desktop",
        "2024-01-08 23:30:00",
        120,
        "Rust",
        50,
    ), // Tue 01-09 01h
    (3, "alice", "laptop", "2024-02-05 09:00:00", 0, "Go", 300),    // Mon 02-05 09h
    (4, "bob", "work", "2023-12-31 23:30:00", 60, "Python", 40),    // Mon 01-01 00h
    (5, "bob", "work", "2024-01-15 12:00:00", -300, "Python", 60),  // Mon 01-15 07h
    (6, "bob", "work", "2024-03-04 12:00:00", -300, "Rust", 200),   // Mon 03-04 07h
    (7, "carol", "pc", "2024-01-10 08:00:00", 0, "Go", 30),         // Wed 01-10 08h
    (7, "carol", "pc", "2024-01-10 08:00:00", 0, "Rust", 10),       // same pulse
];

/// The fixture's heartbeats: user, time (UTC), offset, language. alice on
/// 2024-01-01: 10:00 → 10:05 → 10:07 is 420 s of Rust (the gap before
/// the Go heartbeat counts for Rust), 10:07 → 10:30 is past the 15-minute
/// timeout (Go, only with a longer one), 10:30 → 10:31 is 60 s of Go; a
/// copy of 10:05 adds nothing. bob (private) on 2024-01-02: 600 s of Python.
const HEARTBEATS: &[(&str, &str, i16, &str)] = &[
    ("alice", "2024-01-01 10:00:00", 60, "Rust"),
    ("alice", "2024-01-01 10:05:00", 60, "Rust"),
    ("alice", "2024-01-01 10:05:00", 60, "Rust"),
    ("alice", "2024-01-01 10:07:00", 60, "Go"),
    ("alice", "2024-01-01 10:30:00", 60, "Go"),
    ("alice", "2024-01-01 10:31:00", 60, "Go"),
    ("bob", "2024-01-02 08:00:00", 0, "Python"),
    ("bob", "2024-01-02 08:10:00", 0, "Python"),
];

/// alice (2 machines, one deactivated), bob (private), carol, and dave
/// (no machine, no XP), with [`PULSES`].
async fn seed(db: &Db) {
    accounts::add_user(db, "alice", "", false).await.unwrap();
    accounts::add_user(db, "bob", "b@example.com", true)
        .await
        .unwrap();
    accounts::add_user(db, "carol", "", false).await.unwrap();
    accounts::add_user(db, "dave", "", false).await.unwrap();
    let mut machines = Vec::new();
    for (user, machine) in [
        ("alice", "laptop"),
        ("alice", "desktop"),
        ("bob", "work"),
        ("carol", "pc"),
    ] {
        let (m, _token) = accounts::add_machine(db, user, machine).await.unwrap();
        machines.push((user, machine, m));
    }
    accounts::set_machine_active(db, "alice", "desktop", false)
        .await
        .unwrap();
    let mut insert = db.client().insert::<PulseRow>("pulses").await.unwrap();
    for &(pulse_id, user, machine, coded_at, utc_offset, language, xp) in PULSES {
        let (_, _, m) = machines
            .iter()
            .find(|(u, n, _)| *u == user && *n == machine)
            .unwrap();
        insert
            .write(&PulseRow {
                pulse_id,
                batch_id: 1,
                user_id: m.user_id,
                machine_id: m.machine_id,
                coded_at: utc(coded_at),
                utc_offset,
                language: language.to_owned(),
                xp,
                received_at: utc("2024-03-05 00:00:00"),
            })
            .await
            .unwrap();
    }
    insert.end().await.unwrap();
    let mut beats = Vec::new();
    for &(user, at, utc_offset, language) in HEARTBEATS {
        let (_, _, m) = machines.iter().find(|(u, _, _)| *u == user).unwrap();
        let mut row = HeartbeatRow {
            heartbeat_id: 0,
            batch_id: 1,
            user_id: m.user_id,
            machine_id: m.machine_id,
            time: utc(at),
            time_ms: 0,
            utc_offset,
            entity_hash: String::new(),
            entity: String::new(),
            kind: "file".into(),
            category: "coding".into(),
            project: String::new(),
            branch: String::new(),
            language: language.into(),
            is_write: 0,
            lines: 0,
            line_additions: 0,
            line_deletions: 0,
            lineno: 0,
            cursorpos: 0,
            editor: "Vim".into(),
            os: "Linux".into(),
            machine: "m".into(),
            received_at: utc("2024-03-05 00:00:00"),
        };
        row.heartbeat_id = sql::heartbeats::heartbeat_id(&row);
        beats.push(row);
    }
    // A block id of its own: a query_id runs once at a time on the server.
    sql::heartbeats::insert(db, rand::random(), &beats)
        .await
        .unwrap();
}

/// `codestats sql --query QUERY --param P… --format csv` prints `expected`.
async fn check(db: &Db, query: &str, params: &[&str], expected: &str) {
    let mut args = vec!["sql", "--query", query, "--format", "csv"];
    for param in params {
        args.extend(["--param", param]);
    }
    let got = ok(codestats(db.database(), &args).await);
    assert_eq!(got, expected, "{query} {params:?}");
}

#[tokio::test]
async fn library_queries_answer_the_fixture() {
    let db = sql::test_db!();
    seed(&db).await;
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "top_languages",
            &[],
            "language,xp,users\nRust,360,3\nGo,350,2\nPython,100,1\n",
        ),
        // bob's 2023-12-31 23:30 UTC is 2024-01-01 where he was: counted.
        (
            "top_languages",
            &["since=2024-01-01", "until=2024-01-31", "limit=2"],
            "language,xp,users\nRust,160,2\nPython,100,1\n",
        ),
        (
            "daily_active_users",
            &[],
            "day,users,xp\n2024-01-01,2,160\n2024-01-09,1,50\n2024-01-10,1,40\n\
             2024-01-15,1,60\n2024-02-05,1,300\n2024-03-04,1,200\n",
        ),
        (
            "daily_active_users",
            &["since=2024-01-09", "until=2024-01-15"],
            "day,users,xp\n2024-01-09,1,50\n2024-01-10,1,40\n2024-01-15,1,60\n",
        ),
        (
            "language_xp_per_week",
            &[],
            "week,language,xp\n2024-01-01,Rust,100\n2024-01-01,Python,40\n2024-01-01,Go,20\n\
             2024-01-08,Rust,60\n2024-01-08,Go,30\n2024-01-15,Python,60\n\
             2024-02-05,Go,300\n2024-03-04,Rust,200\n",
        ),
        (
            "language_xp_per_week",
            &["language=Go"],
            "week,language,xp\n2024-01-01,Go,20\n2024-01-08,Go,30\n2024-02-05,Go,300\n",
        ),
        // Cohort 2024-01-01: alice and bob; 2024-01-08: carol.
        (
            "new_user_retention",
            &[],
            "cohort,weeks_later,active_users,cohort_size,retention\n\
             2024-01-01,0,2,2,1.0\n2024-01-01,1,1,2,0.5\n2024-01-01,2,1,2,0.5\n\
             2024-01-01,5,1,2,0.5\n2024-01-01,9,1,2,0.5\n2024-01-08,0,1,1,1.0\n",
        ),
        (
            "new_user_retention",
            &["weeks=2", "until=2024-01-07"],
            "cohort,weeks_later,active_users,cohort_size,retention\n\
             2024-01-01,0,2,2,1.0\n2024-01-01,1,1,2,0.5\n2024-01-01,2,1,2,0.5\n",
        ),
        (
            "new_user_retention",
            &["since=2024-01-08"],
            "cohort,weeks_later,active_users,cohort_size,retention\n2024-01-08,0,1,1,1.0\n",
        ),
        (
            "hour_of_day_by_language",
            &[],
            "language,hour,xp,share\nGo,8,30,0.0857\nGo,9,300,0.8571\nGo,11,20,0.0571\n\
             Python,0,40,0.4\nPython,7,60,0.6\n\
             Rust,1,50,0.1389\nRust,7,200,0.5556\nRust,8,10,0.0278\nRust,11,100,0.2778\n",
        ),
        (
            "hour_of_day_by_language",
            &["language=Python", "until=2024-01-14"],
            "language,hour,xp,share\nPython,0,40,1.0\n",
        ),
        // alice: Rust in January, Go in February. bob: Python in January,
        // nothing in February, Rust in March. carol: Go only.
        (
            "main_language_switches",
            &[],
            "username,month,previous_language,main_language\n\
             alice,2024-02-01,Rust,Go\nbob,2024-03-01,Python,Rust\n",
        ),
        (
            "main_language_switches",
            &["until=2024-02-29"],
            "username,month,previous_language,main_language\nalice,2024-02-01,Rust,Go\n",
        ),
        (
            "machines_per_user",
            &[],
            "username,private,machines,active_machines,coding_machines\n\
             alice,0,2,1,2\nbob,1,1,1,1\ncarol,0,1,1,1\ndave,0,0,0,0\n",
        ),
        (
            "coding_time_per_language",
            &[],
            "language,seconds,users\nPython,600,1\nRust,420,1\nGo,60,1\n",
        ),
        (
            "coding_time_per_language",
            &["timeout=1500", "until=2024-01-01"],
            "language,seconds,users\nGo,1440,1\nRust,420,1\n",
        ),
        (
            "coding_time_per_day",
            &[],
            "day,seconds,users\n2024-01-01,480,1\n2024-01-02,600,1\n",
        ),
        (
            "coding_time_per_day",
            &["username=ALICE"],
            "day,seconds,users\n2024-01-01,480,1\n",
        ),
        (
            "machines_per_user",
            &["since=2024-02-01"],
            "username,private,machines,active_machines,coding_machines\n\
             alice,0,2,1,1\nbob,1,1,1,1\ncarol,0,1,1,0\ndave,0,0,0,0\n",
        ),
    ];
    for (query, params, expected) in cases {
        check(&db, query, params, expected).await;
    }
    // Every library query is covered above.
    for query in sql::queries::library().unwrap() {
        assert!(
            cases.iter().any(|(name, _, _)| *name == query.name),
            "{} has no case",
            query.name
        );
    }
}

#[tokio::test]
async fn parameters_are_checked_and_bound_never_pasted() {
    let db = sql::test_db!();
    seed(&db).await;
    let d = db.database();
    // A quote in a String parameter is data: no language has that name.
    check(
        &db,
        "language_xp_per_week",
        &["language=Go' OR '1'='1"],
        "week,language,xp\n",
    )
    .await;
    fails(
        codestats(
            d,
            &[
                "sql",
                "--query",
                "top_languages",
                "--param",
                "since=2024-01-01' OR 1=1 --",
            ],
        )
        .await,
        &["parameter since", "is not a Date (YYYY-MM-DD)"],
    );
    fails(
        codestats(
            d,
            &["sql", "--query", "top_languages", "--param", "limit=-1"],
        )
        .await,
        &["parameter limit", "is not a whole number"],
    );
    fails(
        codestats(d, &["sql", "--query", "top_languages", "--param", "user=x"]).await,
        &["unknown parameter \"user\" (it takes: since, until, limit)"],
    );
    fails(
        codestats(d, &["sql", "--query", "nope"]).await,
        &["no library query \"nope\""],
    );
    let list = ok(codestats(d, &["sql", "--list"]).await);
    for query in sql::queries::library().unwrap() {
        assert!(list.contains(&format!("{}\n    {}", query.name, query.description)));
    }
    assert!(list.contains("--param since=<Date> = 1970-01-01  first local day counted"));
    assert!(list.contains("--param language=<String> = ''"));
}

/// Every row of every table of the database, and whether a database
/// `evil` exists (other tests create and drop theirs meanwhile).
async fn everything(db: &Db) -> Vec<String> {
    let evil: u64 = db
        .client()
        .query("SELECT count() FROM system.databases WHERE name = 'evil'")
        .fetch_one()
        .await
        .unwrap();
    let mut lines = vec![format!("databases named evil: {evil}")];
    lines.extend(common::table_rows(db).await);
    lines
}

#[tokio::test]
async fn the_server_refuses_writes_and_settings() {
    let db = sql::test_db!();
    seed(&db).await;
    let d = db.database();
    let before = everything(&db).await;
    let attempts = [
        "INSERT INTO pulses SELECT * FROM pulses",
        "INSERT INTO users (user_id, username) VALUES (99, 'mallory')",
        "ALTER TABLE pulses DELETE WHERE 1 = 1",
        "ALTER TABLE users ADD COLUMN evil UInt8",
        "DROP TABLE pulses",
        "TRUNCATE TABLE pulses",
        "CREATE TABLE evil (a UInt8) ENGINE = Memory",
        "CREATE DATABASE evil",
        "OPTIMIZE TABLE pulses FINAL",
        "SET max_result_rows = 5",
        "SET readonly = 0",
        "SELECT count() FROM pulses SETTINGS max_result_rows = 5",
        "SELECT count() FROM pulses SETTINGS readonly = 0",
        // Table functions reach outside the database (files, URLs).
        "SELECT * FROM numbers(10)",
    ];
    for sql in attempts {
        fails(
            codestats(d, &["sql", sql]).await,
            &[
                "query failed (as clickhouse user analyst)",
                "Code: 164",
                "readonly mode",
            ],
        );
    }
    assert_eq!(everything(&db).await, before, "the data changed");
}

#[tokio::test]
async fn the_analyst_runs_with_the_documented_limits() {
    let db = sql::test_db!();
    let got = ok(codestats(
        db.database(),
        &[
            "sql",
            "SELECT name, value FROM system.settings \
             WHERE name IN ('readonly', 'max_result_rows', 'result_overflow_mode', 'max_execution_time') \
             ORDER BY name",
            "--format",
            "csv",
        ],
    )
    .await);
    assert_eq!(
        got,
        format!(
            "name,value\nmax_execution_time,{}\nmax_result_rows,{}\nreadonly,1\nresult_overflow_mode,throw\n",
            local_server::ANALYST_MAX_EXECUTION_SECONDS,
            local_server::ANALYST_MAX_RESULT_ROWS
        )
    );
}

#[tokio::test]
async fn the_server_stops_results_over_the_row_limit() {
    let db = sql::test_db!();
    let d = db.database();
    let rows = |n: u64| format!("SELECT number FROM system.numbers LIMIT {n}");
    fails(
        codestats(
            d,
            &[
                "sql",
                &rows(local_server::ANALYST_MAX_RESULT_ROWS + 1),
                "--format",
                "csv",
            ],
        )
        .await,
        &["Code: 396", "Limit for result exceeded"],
    );
    let csv = ok(codestats(d, &["sql", &rows(1000), "--format", "csv"]).await);
    assert_eq!(csv.lines().count(), 1001);
}

#[tokio::test]
async fn ad_hoc_sql_from_text_and_file() {
    let db = sql::test_db!();
    seed(&db).await;
    let d = db.database();
    let sql = "SELECT username FROM users FINAL WHERE deleted = 0 ORDER BY username;";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.sql");
    std::fs::write(&file, sql).unwrap();
    let expected = "username\nalice\nbob\ncarol\ndave\n";
    assert_eq!(
        ok(codestats(d, &["sql", sql, "--format", "csv"]).await),
        expected
    );
    let file = file.to_str().unwrap();
    assert_eq!(
        ok(codestats(d, &["sql", "-f", file, "--format", "csv"]).await),
        expected
    );
    let table = ok(codestats(d, &["sql", sql]).await);
    assert!(
        table.contains("shape: (4, 1)") && table.contains("carol"),
        "{table}"
    );
    fails(
        codestats(d, &["sql", "SELECT 1 FORMAT CSV"]).await,
        &["FORMAT clause"],
    );
    fails(
        codestats(d, &["sql", "SELECT nope FROM pulses"]).await,
        &["Code: 47"],
    );
}

/// bob's pulses in many ClickHouse types, as the frame they must read as.
const TYPED: &str = "\
SELECT pulse_id, coded_at, toDate(coded_at + utc_offset * 60) AS day, utc_offset,
       language, xp, xp / 3 AS third, concat(language, ', \"x\"') AS label,
       if(xp > 50, xp, NULL) AS big_xp, [xp, 1] AS pair,
       toUInt64(18446744073709551615) AS max_u64
FROM pulses
WHERE pulse_id IN (4, 5, 6)
ORDER BY coded_at";

fn typed_frame() -> DataFrame {
    let ms = |at: &str| i64::from(utc(at)) * 1000;
    let days = |day: &str| {
        (chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap() - chrono::NaiveDate::default())
            .num_days() as i32
    };
    let columns = vec![
        Series::new("pulse_id".into(), [4u64, 5, 6]),
        Series::new(
            "coded_at".into(),
            [
                ms("2023-12-31 23:30:00"),
                ms("2024-01-15 12:00:00"),
                ms("2024-03-04 12:00:00"),
            ],
        )
        .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
        .unwrap(),
        Series::new(
            "day".into(),
            [days("2024-01-01"), days("2024-01-15"), days("2024-03-04")],
        )
        .cast(&DataType::Date)
        .unwrap(),
        Series::new("utc_offset".into(), [60i32, -300, -300]),
        Series::new("language".into(), ["Python", "Python", "Rust"]),
        Series::new("xp".into(), [40u32, 60, 200]),
        Series::new("third".into(), [40.0 / 3.0, 20.0, 200.0 / 3.0]),
        Series::new(
            "label".into(),
            ["Python, \"x\"", "Python, \"x\"", "Rust, \"x\""],
        ),
        Series::new("big_xp".into(), [None, Some(60u32), Some(200)]),
        Series::new("pair".into(), ["[40,1]", "[60,1]", "[200,1]"]),
        Series::new("max_u64".into(), [u64::MAX; 3]),
    ];
    DataFrame::new(3, columns.into_iter().map(Column::from).collect()).unwrap()
}

fn assert_same(format: &str, got: &DataFrame, expected: &DataFrame) {
    assert!(
        got.equals_missing(expected) && got.schema() == expected.schema(),
        "{format} read back as\n{got}\nnot\n{expected}"
    );
}

#[tokio::test]
async fn output_formats_round_trip() {
    let db = sql::test_db!();
    seed(&db).await;
    let d = db.database();
    let dir = tempfile::tempdir().unwrap();
    let expected = typed_frame();
    let schema = Arc::new(expected.schema().as_ref().clone());
    for format in ["csv", "json", "parquet"] {
        let path = dir.path().join(format!("out.{format}"));
        let out = codestats(
            d,
            &[
                "sql",
                TYPED,
                "--format",
                format,
                "--output",
                path.to_str().unwrap(),
            ],
        )
        .await;
        assert_eq!(ok(out), "", "{format}: nothing on stdout");
        let got = match format {
            "csv" => CsvReadOptions::default()
                .with_has_header(true)
                .with_schema(Some(schema.clone()))
                .try_into_reader_with_file_path(Some(path))
                .unwrap()
                .finish()
                .unwrap(),
            "json" => JsonReader::new(std::fs::File::open(&path).unwrap())
                .with_json_format(JsonFormat::Json)
                .with_schema(schema.clone())
                .finish()
                .unwrap(),
            _ => ParquetReader::new(std::fs::File::open(&path).unwrap())
                .finish()
                .unwrap(),
        };
        assert_same(format, &got, &expected);
    }
    let table = ok(codestats(d, &["sql", TYPED]).await);
    assert!(table.contains("shape: (3, 11)"), "{table}");
}
