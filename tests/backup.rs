//! `codestats backup` and `codestats restore`: a backup, a wiped store and
//! a restore give back every row, the XP and the rendered profile; a dump
//! stops at its cut (the clock's, or a block in flight); a changed dump and
//! a store that holds rows are refused; `--keep` prunes old dumps.

mod common;

use common::{codestats, fails, ok, stdout};
use sha2::{Digest, Sha256};
use sql::{
    Db, backup::Manifest, clickhouse::sql::Identifier, heartbeats::HeartbeatRow, pulses::PulseRow,
};
use std::{
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

const DAY: u32 = 86_400;

/// `codestats ARGS` over `db` with its data dir in `data`.
async fn run(db: &Db, data: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--data-dir", data.to_str().unwrap()];
    all.extend_from_slice(args);
    codestats(db.database(), &all).await
}

/// `codestats backup DIR ARGS`; the dump's path it prints.
async fn backup(db: &Db, data: &Path, dir: &Path, args: &[&str]) -> PathBuf {
    let mut all = vec!["backup", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let path = PathBuf::from(ok(run(db, data, &all).await).trim());
    assert!(path.starts_with(dir), "{}", path.display());
    path
}

fn manifest(dump: &Path) -> Manifest {
    serde_json::from_slice(&std::fs::read(dump.join("manifest.json")).unwrap()).unwrap()
}

fn now() -> u32 {
    chrono::Utc::now().timestamp() as u32
}

/// The data tables of `db`: all but the migrations'.
/// The tables a dump holds: all but the migrations' and the running nodes'
/// state (`sql::backup::NOT_DUMPED`).
async fn tables(db: &Db) -> Vec<String> {
    let all: Vec<String> = db
        .client()
        .query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() \
             AND name != 'schema_migrations' ORDER BY name",
        )
        .fetch_all()
        .await
        .unwrap();
    all.into_iter()
        .filter(|t| !sql::backup::NOT_DUMPED.contains(&t.as_str()))
        .collect()
}

/// The rows of `table` that match `filter` (SQL of this file), as sorted
/// TSV lines.
async fn rows(db: &Db, table: &str, filter: &str) -> Vec<String> {
    let bytes = db
        .client()
        .query(&format!("SELECT * FROM ? WHERE {filter}"))
        .bind(Identifier(table))
        .fetch_bytes("TSV")
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

async fn number(db: &Db, sql: &str) -> u64 {
    db.client().query(sql).fetch_one().await.unwrap()
}

/// A user with a machine: their ids.
async fn user(db: &Db, name: &str) -> (u64, u64) {
    let user = sql::accounts::add_user(db, name, "", false).await.unwrap();
    let (machine, _token) = sql::accounts::add_machine(db, name, "laptop")
        .await
        .unwrap();
    (user.user_id, machine.machine_id)
}

/// Writes a block as the shipper does: its pulses, then its `xp_hourly`
/// rows and marker, every row with the block's id and `received_at`. One
/// pulse of `xp` per hour, ending an hour before `received_at`. Returns
/// the block id.
async fn block(db: &Db, (user_id, machine_id): (u64, u64), received_at: u32, xp: &[u32]) -> u64 {
    let id = rand::random();
    let rows: Vec<PulseRow> = xp
        .iter()
        .enumerate()
        .map(|(i, &xp)| PulseRow {
            pulse_id: rand::random(),
            batch_id: 0,
            user_id,
            machine_id,
            coded_at: received_at - 3600 * (i as u32 + 1),
            utc_offset: 120,
            language: ["Rust", "Go"][i % 2].into(),
            xp,
            received_at: 0,
        })
        .collect();
    let rows = sql::blocks::stamp(rows, id, received_at);
    sql::blocks::insert_pulses(db, id, &rows).await.unwrap();
    sql::blocks::insert_xp(db, id, received_at, &rows)
        .await
        .unwrap();
    id
}

/// Heartbeats at `times`, in one block received at `received_at`
/// (a random block id: one query id runs once at a time on the server).
async fn heartbeats(db: &Db, (user_id, machine_id): (u64, u64), received_at: u32, times: &[u32]) {
    let rows: Vec<HeartbeatRow> = times
        .iter()
        .map(|&time| {
            let mut row = HeartbeatRow {
                heartbeat_id: 0,
                batch_id: 0,
                user_id,
                machine_id,
                time,
                time_ms: 250,
                utc_offset: 120,
                entity_hash: sql::heartbeats::entity_hash(user_id, "src/main.rs"),
                entity: String::new(),
                kind: "file".into(),
                category: "coding".into(),
                project: "codestats".into(),
                branch: "main".into(),
                language: "Rust".into(),
                is_write: 1,
                lines: 120,
                line_additions: 3,
                line_deletions: 1,
                lineno: 40,
                cursorpos: 7,
                editor: "Vim".into(),
                os: "Linux".into(),
                machine: "laptop".into(),
                received_at: 0,
            };
            row.heartbeat_id = sql::heartbeats::heartbeat_id(&row);
            row
        })
        .collect();
    let id = rand::random();
    let rows = sql::blocks::stamp(rows, id, received_at);
    sql::heartbeats::insert(db, id, &rows).await.unwrap();
}

/// What a store received after a dump's cut, to leave out of the
/// comparison.
struct Late {
    user_id: u64,
    block: u64,
}

impl Late {
    /// The rows of `table` a dump cut at `cut` holds, as SQL.
    fn filter(&self, table: &str, cut: u32) -> String {
        match table {
            "pulses" | "heartbeats" => format!("received_at < toDateTime({cut})"),
            "xp_hourly" => format!(
                "user_id != {} AND machine_id != {}",
                self.user_id, self.block
            ),
            _ => "1".to_owned(),
        }
    }
}

/// Seeded users and pulses over 45 days (so several months: some dumped
/// as stored, the cut's summed again), alice's shipped blocks, heartbeats
/// with a copy, a password and a session; and rows received an hour from
/// now, after any cut.
async fn populate(db: &Db, data: &Path) -> Late {
    ok(run(
        db,
        data,
        &["seed", "--users", "6", "--days", "45", "--prefix", "seed"],
    )
    .await);
    let alice = user(db, "alice").await;
    let now = now();
    block(db, alice, now - 40 * DAY, &[300, 120]).await;
    block(db, alice, now - 3 * DAY, &[50, 70, 90]).await;
    let beats = [now - 3 * DAY, now - 3 * DAY + 60, now - 3 * DAY + 200];
    heartbeats(db, alice, now - 2 * DAY, &beats).await;
    // A copy of one, received later: one heartbeat in the end.
    heartbeats(db, alice, now - DAY, &beats[..1]).await;
    sql::accounts::secrets::set_password(
        db,
        alice.0,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    )
    .await
    .unwrap();
    sql::account_tokens::create(
        db,
        sql::account_tokens::Kind::Session,
        alice.0,
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let alice_row = sql::accounts::get_user(db, "alice").await.unwrap();
    sql::accounts::preferences::set_leaderboards(db, &alice_row, false)
        .await
        .unwrap();
    sql::languages::aliases::set(db, "rustlang", "Rust")
        .await
        .unwrap();

    let late = user(db, "late").await;
    let late_block = block(db, late, now + 3600, &[1000]).await;
    heartbeats(db, late, now + 3600, &[now - 60]).await;
    Late {
        user_id: late.0,
        block: late_block,
    }
}

/// A built profile page, its "numbers as of" time masked.
fn profile(data: &Path, name: &str) -> String {
    let path = data
        .join("site")
        .join(builder::paths::user_dir(name))
        .join("index.html");
    let html = std::fs::read_to_string(&path).unwrap();
    let start = html.find("Numbers as of <time").expect("the footer's time");
    let end = start + html[start..].find("</time>").unwrap();
    format!("{}[time]{}", &html[..start], &html[end..])
}

#[tokio::test]
async fn a_restore_into_a_wiped_store_gives_back_the_rows_the_xp_and_the_site() {
    let started = Instant::now();
    let db = sql::test_db!();
    let (data, restored_data, backups) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let late = populate(&db, data.path()).await;
    ok(run(&db, data.path(), &["build"]).await);
    let page = profile(data.path(), "alice");
    assert!(page.contains("alice"));
    // Merged now, so the rows stored are the rows a reader sees.
    for table in tables(&db).await {
        db.client()
            .query("OPTIMIZE TABLE ? FINAL")
            .bind(Identifier(&table))
            .execute()
            .await
            .unwrap();
    }
    // The seeded pulses were received as they were coded, up to now: past
    // the backup's margin before it starts.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(started.elapsed())).await;

    let dump = backup(&db, data.path(), backups.path(), &[]).await;
    let m = manifest(&dump);
    let cut = (m.cut_ms / 1000) as u32;
    assert!(cut + 120 > now() && cut + 5 <= now(), "cut {cut}");
    assert_eq!(
        (m.format, m.database.as_str(), m.schema_version),
        (1, db.database(), sql::backup::latest_schema_version())
    );
    let names: Vec<&str> = m.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(&names[..3], ["pulses", "xp_hourly", "heartbeats"]);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, tables(&db).await);
    let mut files: Vec<String> = std::fs::read_dir(&dump)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected_files: Vec<String> = m.tables.iter().map(|t| t.file.clone()).collect();
    expected_files.push("manifest.json".into());
    expected_files.sort();
    assert_eq!(files, expected_files);

    let mut before = Vec::new();
    for table in &m.tables {
        let bytes = std::fs::read(dump.join(&table.file)).unwrap();
        assert_eq!(bytes.len() as u64, table.bytes, "{}", table.name);
        assert_eq!(hex(&Sha256::digest(&bytes)), table.sha256, "{}", table.name);
        let rows = rows(&db, &table.name, &late.filter(&table.name, cut)).await;
        assert_eq!(rows.len() as u64, table.rows, "{}", table.name);
        assert!(
            table.rows > 0,
            "{} is empty: the test covers nothing",
            table.name
        );
        before.push((table.name.clone(), rows));
    }
    let xp_filter = format!("received_at < toDateTime({cut})");
    let xp_before = (
        number(
            &db,
            &format!("SELECT sum(xp) FROM pulses WHERE {xp_filter}"),
        )
        .await,
        number(
            &db,
            &format!(
                "SELECT sum(xp) FROM xp_hourly WHERE {}",
                late.filter("xp_hourly", cut)
            ),
        )
        .await,
    );
    assert_eq!(xp_before.0, xp_before.1);
    assert!(!before[0].1.is_empty());

    db.drop_database().await.unwrap();
    let out = ok(run(
        &db,
        restored_data.path(),
        &["restore", dump.to_str().unwrap()],
    )
    .await);
    assert!(
        out.contains(&format!("restored {} rows", m.rows())),
        "{out}"
    );
    assert!(out.contains("site built"), "{out}");

    for (table, expected) in &before {
        assert_eq!(&rows(&db, table, "1").await, expected, "table {table}");
    }
    let xp_after = (
        number(&db, "SELECT sum(xp) FROM pulses").await,
        number(&db, "SELECT sum(xp) FROM xp_hourly").await,
    );
    assert_eq!(xp_after, xp_before);
    assert_eq!(profile(restored_data.path(), "alice"), page);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A dump ends where this node's shipper has a block in flight: its rows
/// and everything received after it wait for the next dump.
#[tokio::test]
async fn a_block_in_flight_holds_the_cut_back() {
    let db = sql::test_db!();
    let (data, backups) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let in_flight = now() - 3600;
    let log = data.path().join("log");
    std::fs::create_dir_all(&log).unwrap();
    ingest::ship::state::State {
        shipped: Default::default(),
        intent: Some(ingest::ship::state::Intent {
            block_id: 7,
            received_at: in_flight,
            from: Default::default(),
            to: Default::default(),
        }),
    }
    .save(&log)
    .unwrap();
    let alice = user(&db, "alice").await;
    block(&db, alice, in_flight - 60, &[10]).await;
    block(&db, alice, in_flight, &[20]).await;
    heartbeats(&db, alice, in_flight - 60, &[in_flight - 3600]).await;
    heartbeats(&db, alice, in_flight + 10, &[in_flight - 1800]).await;

    let m = manifest(&backup(&db, data.path(), backups.path(), &[]).await);
    assert_eq!(m.cut_ms, u64::from(in_flight) * 1000);
    let rows = |name: &str| m.tables.iter().find(|t| t.name == name).unwrap().rows;
    // The first block's pulse, its xp_hourly row and marker, one heartbeat.
    assert_eq!(
        (rows("pulses"), rows("xp_hourly"), rows("heartbeats")),
        (1, 2, 1)
    );
    assert_eq!((rows("users"), rows("machines")), (1, 1));
}

/// A small store and its dump.
async fn small_dump(db: &Db, data: &Path, backups: &Path) -> PathBuf {
    let alice = user(db, "alice").await;
    block(db, alice, now() - DAY, &[10, 20, 30]).await;
    heartbeats(db, alice, now() - DAY, &[now() - DAY - 100]).await;
    backup(db, data, backups, &[]).await
}

async fn total_rows(db: &Db) -> u64 {
    let mut total = 0;
    for table in tables(db).await {
        total += rows(db, &table, "1").await.len() as u64;
    }
    total
}

#[tokio::test]
async fn a_changed_dump_is_refused_before_anything_is_inserted() {
    let db = sql::test_db!();
    let (data, backups) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dump = small_dump(&db, data.path(), backups.path()).await;
    db.drop_database().await.unwrap();

    type Change = fn(&Path);
    let cases: [(Change, &[&str]); 3] = [
        (
            |d| {
                let path = d.join("pulses.native.gz");
                let mut bytes = std::fs::read(&path).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 1;
                std::fs::write(path, bytes).unwrap();
            },
            &["pulses.native.gz", "SHA-256", "damaged or was changed"],
        ),
        (
            |d| {
                let path = d.join("users.native.gz");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(path, &bytes[..bytes.len() - 1]).unwrap();
            },
            &["users.native.gz", "bytes, the manifest says", "damaged"],
        ),
        (
            |d| std::fs::remove_file(d.join("heartbeats.native.gz")).unwrap(),
            &["heartbeats.native.gz", "No such file"],
        ),
    ];
    for (change, expected) in cases {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(&dump).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
        }
        change(copy.path());
        fails(
            run(
                &db,
                data.path(),
                &["restore", copy.path().to_str().unwrap()],
            )
            .await,
            expected,
        );
        assert_eq!(
            total_rows(&db).await,
            0,
            "rows inserted from a changed dump"
        );
    }
    // The dump itself restores.
    ok(run(
        &db,
        data.path(),
        &["restore", "--no-build", dump.to_str().unwrap()],
    )
    .await);
    assert_eq!(total_rows(&db).await, manifest(&dump).rows());
}

#[tokio::test]
async fn a_store_that_holds_rows_is_not_restored_into() {
    let db = sql::test_db!();
    let (data, backups) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let dump = small_dump(&db, data.path(), backups.path()).await;
    let before = total_rows(&db).await;
    let out = run(&db, data.path(), &["restore", dump.to_str().unwrap()]).await;
    fails(out, &["holds", "rows: a restore needs an empty store"]);
    assert_eq!(total_rows(&db).await, before);
}

#[tokio::test]
async fn keep_leaves_the_newest_dumps_and_no_unfinished_one() {
    let db = sql::test_db!();
    let (data, backups) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let partial = backups.path().join(".codestats-20200101T000000Z.partial");
    let notes = backups.path().join("notes");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::create_dir_all(&notes).unwrap();
    let mut dumps = Vec::new();
    for _ in 0..3 {
        // One dump per second: the name is the second it began.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        dumps.push(backup(&db, data.path(), backups.path(), &["--keep", "2"]).await);
    }
    let mut left: Vec<PathBuf> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    left.sort();
    assert_eq!(left, [dumps[1].clone(), dumps[2].clone(), notes]);
    assert!(sql::backup::is_dump_name(
        &dumps[2].file_name().unwrap().to_string_lossy()
    ));

    let out = run(&db, data.path(), &["backup", "x", "--keep", "0"]).await;
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty());
}

/// A data dir whose embedded ClickHouse runs on free ports (no
/// `CODESTATS_CLICKHOUSE_URL`); stopped when dropped.
struct Embedded {
    dir: tempfile::TempDir,
    http: u16,
    tcp: u16,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.run(&["clickhouse", "stop"]);
    }
}

impl Embedded {
    fn start() -> Self {
        let embedded = Self {
            dir: tempfile::tempdir().unwrap(),
            http: sql::testing::free_port(),
            tcp: sql::testing::free_port(),
        };
        ok(embedded.run(&["clickhouse", "start"]));
        embedded
    }

    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(common::BIN)
            .args(args)
            .env_remove("CODESTATS_CLICKHOUSE_URL")
            .env_remove("CODESTATS_CLICKHOUSE_USER")
            .env_remove("CODESTATS_CLICKHOUSE_PASSWORD")
            .env_remove("CODESTATS_CLICKHOUSE_DATABASE")
            .env("CODESTATS_DATA_DIR", self.dir.path())
            .env(
                "CODESTATS_LOCAL_CLICKHOUSE_HTTP_PORT",
                self.http.to_string(),
            )
            .env("CODESTATS_LOCAL_CLICKHOUSE_TCP_PORT", self.tcp.to_string())
            .output()
            .unwrap()
    }

    /// The `codestats` database, as the writer.
    fn db(&self) -> Db {
        let mut server = sql::local_server::LocalServerConfig::for_data_dir(self.dir.path());
        server.http_port = self.http;
        server.tcp_port = self.tcp;
        let config = server
            .clickhouse_config(sql::config::DEFAULT_DATABASE)
            .unwrap();
        Db::new(&server.url(), &config).unwrap()
    }
}

/// The same round trip against the embedded server: dumped from one data
/// dir's, restored into another's.
#[tokio::test]
async fn a_dump_of_the_embedded_server_restores_into_another() {
    let (from, to) = (Embedded::start(), Embedded::start());
    ok(from.run(&["users", "add", "alice"]));
    ok(from.run(&["machines", "add", "alice", "laptop"]));
    let db = from.db();
    let machine: u64 = number(&db, "SELECT machine_id FROM machines").await;
    let alice: u64 = number(&db, "SELECT user_id FROM users").await;
    block(&db, (alice, machine), now() - 2 * DAY, &[40, 50]).await;
    heartbeats(&db, (alice, machine), now() - 2 * DAY, &[now() - 3 * DAY]).await;
    let backups = from.dir.path().join("backups");
    let dump = PathBuf::from(ok(from.run(&["backup", backups.to_str().unwrap()])).trim());

    let out = ok(to.run(&["restore", "--no-build", dump.to_str().unwrap()]));
    assert!(
        out.contains(&format!("restored {} rows", manifest(&dump).rows())),
        "{out}"
    );
    let restored = to.db();
    for table in tables(&db).await {
        assert_eq!(
            rows(&restored, &table, "1").await,
            rows(&db, &table, "1").await,
            "table {table}"
        );
    }
    assert_eq!(number(&restored, "SELECT sum(xp) FROM pulses").await, 90);
}
