//! Pulses through the real ingest endpoint, then `codestats build --user`:
//! the published numbers equal a direct SQL computation over the raw rows,
//! and private users appear nowhere in the site.

use serde_json::{Value, json};
use sql::{Db, test_db};
use std::{collections::BTreeMap, path::Path, process::Command};

mod common;

use common::{BIN, Serve, post};

/// The ingest API on a loopback port, over `db`.
async fn ingest_server(db: &Db, data: &Path) -> (String, ingest::AppState) {
    let app = ingest::App::start(db.clone(), &ingest::IngestConfig::new(data))
        .await
        .unwrap();
    let server = ingest::server::RunningServer::start(
        ([127, 0, 0, 1], 0).into(),
        ingest::router(app.clone()),
        ingest::server::ServerLimits::default(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.addr);
    // Serves until the test ends.
    std::mem::forget(server);
    (url, app)
}

fn rfc3339(utc: i64, offset_minutes: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
    chrono::DateTime::from_timestamp(utc, 0)
        .unwrap()
        .with_timezone(&offset)
        .to_rfc3339()
}

/// The Code::Stats JSON of `user`, computed straight from `pulses`.
async fn expected_json(db: &Db, username: &str) -> Value {
    let user = sql::accounts::get_user(db, username).await.unwrap();
    let q = |sql: &str| db.client().query(sql).bind(user.user_id);
    let since = (chrono::Utc::now().timestamp() - 12 * 3600) as u32;
    let (total, new): (u64, u64) = db
        .client()
        .query("SELECT sum(xp), sumIf(xp, coded_at >= toDateTime(?)) FROM pulses WHERE user_id = ?")
        .bind(since)
        .bind(user.user_id)
        .fetch_one()
        .await
        .unwrap();
    let pairs = |rows: Vec<(String, u64, u64)>| -> BTreeMap<String, Value> {
        rows.into_iter()
            .map(|(k, xps, new_xps)| (k, json!({"xps": xps, "new_xps": new_xps})))
            .collect()
    };
    let languages: Vec<(String, u64, u64)> = db
        .client()
        .query("SELECT language, sum(xp), sumIf(xp, coded_at >= toDateTime(?)) FROM pulses WHERE user_id = ? GROUP BY language")
        .bind(since)
        .bind(user.user_id)
        .fetch_all()
        .await
        .unwrap();
    let machines: Vec<(String, u64, u64)> = db
        .client()
        .query(
            "SELECT name, sum(xp), sumIf(xp, coded_at >= toDateTime(?)) FROM pulses \
             ANY INNER JOIN (SELECT machine_id, name FROM machines FINAL) USING machine_id \
             WHERE user_id = ? GROUP BY name",
        )
        .bind(since)
        .bind(user.user_id)
        .fetch_all()
        .await
        .unwrap();
    let dates: BTreeMap<String, u64> = q(
        "SELECT toString(toDate(coded_at + utc_offset * 60)) AS d, sum(xp) FROM pulses WHERE user_id = ? GROUP BY d",
    )
    .fetch_all::<(String, u64)>()
    .await
    .unwrap()
    .into_iter()
    .collect();
    json!({
        "user": user.username,
        "total_xp": total,
        "new_xp": new,
        "machines": pairs(machines),
        "languages": pairs(languages),
        "dates": dates,
    })
}

fn all_files(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_profile_equals_sql_over_raw_pulses() {
    let db = test_db!();
    sql::accounts::add_user(&db, "Alice", "", false)
        .await
        .unwrap();
    sql::accounts::add_user(&db, "SecretBob", "", true)
        .await
        .unwrap();
    sql::accounts::add_user(&db, "carol", "", false)
        .await
        .unwrap();
    let (_, laptop) = sql::accounts::add_machine(&db, "alice", "laptop")
        .await
        .unwrap();
    let (_, desk) = sql::accounts::add_machine(&db, "alice", "desk")
        .await
        .unwrap();
    let (_, bob) = sql::accounts::add_machine(&db, "SecretBob", "bobs-box")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let (url, app) = ingest_server(&db, data.path()).await;

    let now = chrono::Utc::now().timestamp();
    let two_days_ago_11h = (now / 86400 - 2) * 86400 + 11 * 3600;
    // 11:00 UTC is 01:00 the next day at +14:00 and 23:00 the day before at −12:00.
    post(
        &url,
        &laptop,
        rfc3339(two_days_ago_11h, 14 * 60),
        json!([{"language": "Rust", "xp": 100}, {"language": "SQL", "xp": 5}]),
    )
    .await;
    post(
        &url,
        &desk,
        rfc3339(two_days_ago_11h, -12 * 60),
        json!([{"language": "rust", "xp": 40}]),
    )
    .await;
    post(
        &url,
        &laptop,
        rfc3339((now / 86400 - 5) * 86400 + 12 * 3600, 120),
        json!([{"language": "Elixir", "xp": 70}]),
    )
    .await;
    post(
        &url,
        &desk,
        // Ten minutes ago, but today (UTC): never on the date the +14:00
        // pulse falls on, whatever the time of day the test runs.
        rfc3339((now - 600).max(now / 86400 * 86400), 0),
        json!([{"language": "Rust", "xp": 9}, {"language": "Zig", "xp": 3}]),
    )
    .await;
    post(
        &url,
        &bob,
        rfc3339(now - 60, 0),
        json!([{"language": "BobLang", "xp": 1000}]),
    )
    .await;

    // Everything acknowledged is in ClickHouse before the build reads it.
    app.flush().await;
    let site = data.path().join("site");
    let out = Command::new(BIN)
        .args(["build", "--user", "ALICE"])
        .envs(sql::testing::binary_env(db.database()).await)
        .env("CODESTATS_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let published: Value = serde_json::from_slice(
        &std::fs::read(site.join(builder::paths::api_user_file("Alice"))).unwrap(),
    )
    .unwrap();
    let expected = expected_json(&db, "alice").await;
    assert_eq!(published, expected);
    // The local dates across UTC midnight are the users' dates.
    let day = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    assert_eq!(published["dates"][day(two_days_ago_11h + 14 * 3600)], 105);
    assert_eq!(published["dates"][day(two_days_ago_11h - 12 * 3600)], 40);
    assert_eq!(
        published["languages"]["Rust"]["xps"], 149,
        "one spelling of Rust"
    );

    // carol has a page telling her how to set up a plugin.
    let carol = std::fs::read_to_string(
        site.join(builder::paths::user_dir("carol"))
            .join("index.html"),
    )
    .unwrap();
    assert!(carol.contains("/api/my/pulses"), "no setup instructions");

    // The private user and their language are nowhere.
    let mut files = Vec::new();
    all_files(&site, &mut files);
    assert!(files.len() > 10);
    for (path, bytes) in &files {
        let text = String::from_utf8_lossy(bytes).to_lowercase();
        assert!(
            !text.contains("secretbob"),
            "{} mentions the private user",
            path.display()
        );
        assert!(
            !text.contains("boblang"),
            "{} mentions the private user's language",
            path.display()
        );
        assert!(!path.to_string_lossy().to_lowercase().contains("secretbob"));
    }
}

/// `serve` keeps the site current by itself: a pulse posted to it shows on
/// the user's page after the next scheduled incremental run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rebuilds_a_profile_after_a_pulse() {
    let db = test_db!();
    sql::accounts::add_user(&db, "Fresh", "", false)
        .await
        .unwrap();
    let (_, token) = sql::accounts::add_machine(&db, "fresh", "m").await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        db.database(),
        data.path(),
        &[("CODESTATS_ROLLUP_INTERVAL_SECS", "1")],
    )
    .await;
    // The set-up instructions name this server's own address (tera writes
    // the URL's slashes as entities; the host and port are as they are).
    let host = serve.base.trim_start_matches("http://").to_owned();
    serve
        .wait_for("/users/Fresh/", |page| {
            page.contains(&format!("{host}/api/my/pulses"))
        })
        .await;
    post(
        &serve.base,
        &token,
        rfc3339(chrono::Utc::now().timestamp() - 5, 0),
        json!([{"language": "Rust", "xp": 12345}]),
    )
    .await;
    serve
        .wait_for("/users/Fresh/", |page| page.contains("12,345"))
        .await;
}
