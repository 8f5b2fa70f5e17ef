//! The `codestats` binary, run as a user would: accounts commands against the
//! test ClickHouse, and `serve` with its embedded ClickHouse.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{BIN, codestats, fails, ok, stderr, stdout};

#[tokio::test]
async fn users_and_machines_commands() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "Alice", "--email", "a@example.com"]).await);
    ok(codestats(d, &["users", "add", "bob", "--private"]).await);
    fails(
        codestats(d, &["users", "add", "ALICE"]).await,
        &["already exists"],
    );
    fails(
        codestats(d, &["users", "add", "a/b"]).await,
        &["may not contain '/'"],
    );
    fails(
        codestats(d, &["users", "add", ""]).await,
        &["1 to 64 characters"],
    );
    fails(
        codestats(d, &["users", "add", &"x".repeat(65)]).await,
        &["1 to 64 characters"],
    );
    let list = ok(codestats(d, &["users", "list"]).await);
    assert!(list.contains("Alice\tpublic"), "{list}");
    assert!(list.contains("bob\tprivate"), "{list}");
    ok(codestats(d, &["users", "set", "alice", "--private"]).await);
    assert!(ok(codestats(d, &["users", "list"]).await).contains("Alice\tprivate"));

    let token = ok(codestats(d, &["machines", "add", "alice", "laptop"]).await);
    let token = token.trim();
    assert!(
        token.len() == 36 && token.split('-').count() == 5 && !token.contains(char::is_whitespace),
        "{token}"
    );
    fails(
        codestats(d, &["machines", "add", "alice", "laptop"]).await,
        &["already exists"],
    );
    fails(
        codestats(d, &["machines", "add", "nobody", "laptop"]).await,
        &["not found"],
    );
    fails(
        codestats(d, &["machines", "add", "alice", &"m".repeat(65)]).await,
        &["1 to 64"],
    );

    let new_token = ok(codestats(d, &["machines", "regenerate", "alice", "laptop"]).await);
    assert_ne!(new_token.trim(), token);
    ok(codestats(d, &["machines", "rename", "alice", "laptop", "desk"]).await);
    ok(codestats(d, &["machines", "deactivate", "alice", "desk"]).await);
    assert_eq!(
        ok(codestats(d, &["machines", "list", "alice"]).await)
            .split('\t')
            .take(2)
            .collect::<Vec<_>>(),
        ["desk", "inactive"]
    );
    ok(codestats(d, &["machines", "delete", "alice", "desk"]).await);
    assert_eq!(ok(codestats(d, &["machines", "list", "alice"]).await), "");
    ok(codestats(d, &["users", "delete", "bob"]).await);
    assert!(!ok(codestats(d, &["users", "list"]).await).contains("bob"));
}

/// Every byte ClickHouse holds for the database: a TSV dump of each table,
/// and the files of the test server's data directory.
async fn everything_stored(db: &sql::Db) -> Vec<u8> {
    let mut all = common::table_rows(db).await.join("\n").into_bytes();
    // The files of every active part, where the server keeps them (the
    // suite's server runs on this machine).
    let parts: Vec<String> = db
        .client()
        .query("SELECT path FROM system.parts WHERE database = currentDatabase() AND active")
        .fetch_all()
        .await
        .unwrap();
    assert!(!parts.is_empty(), "no parts");
    for part in parts {
        let part = std::path::PathBuf::from(part);
        if std::env::var_os("CODESTATS_TEST_CLICKHOUSE_URL").is_none() {
            assert!(part.exists(), "{} missing", part.display());
        }
        if part.exists() {
            read_tree(&part, &mut all);
        }
    }
    all
}

fn read_tree(dir: &Path, out: &mut Vec<u8>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_tree(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn tokens_are_never_stored_in_clear() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "carol"]).await);
    let first = ok(codestats(d, &["machines", "add", "carol", "pc"]).await);
    let second = ok(codestats(d, &["machines", "regenerate", "carol", "pc"]).await);
    let stored = everything_stored(&db).await;
    assert!(contains(&stored, "carol"), "the dump sees the data");
    for token in [first.trim(), second.trim()] {
        assert!(!contains(&stored, token), "token stored in clear");
        assert!(
            contains(&stored, &sql::token::hash_hex(token)),
            "hash stored"
        );
    }
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
}

/// `serve` with no ClickHouse configured: it starts its own, answers
/// /healthz, admin commands use that server, and SIGTERM stops both.
#[tokio::test]
async fn serve_runs_and_stops_an_embedded_clickhouse() {
    let data = tempfile::tempdir().unwrap();
    let (http, tcp, listen) = (
        sql::testing::free_port(),
        sql::testing::free_port(),
        sql::testing::free_port(),
    );
    let cmd = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_remove("CODESTATS_CLICKHOUSE_URL")
            .env("CODESTATS_DATA_DIR", data.path())
            .env("CODESTATS_LOCAL_CLICKHOUSE_HTTP_PORT", http.to_string())
            .env("CODESTATS_LOCAL_CLICKHOUSE_TCP_PORT", tcp.to_string());
        c
    };

    // Without serve, an admin command runs the data dir's server for itself.
    let out = cmd(&["users", "add", "dana"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let started = Instant::now();
    let mut serve = cmd(&["serve", "--listen", &format!("127.0.0.1:{listen}")])
        .env("RUST_LOG", "info,codestats=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let serve_log = || std::fs::read_to_string(data.path().join("serve.log")).unwrap_or_default();
    let health_url = format!("http://127.0.0.1:{listen}/healthz");
    let body = loop {
        if let Ok(r) = reqwest::get(&health_url).await {
            break r.text().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no /healthz within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        health["clickhouse"]
            .as_str()
            .unwrap()
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit()
    );

    // With serve running, admin commands talk to its server and data.
    let out = cmd(&["users", "list"]).output().unwrap();
    assert!(stdout(&out).starts_with("dana\t"), "{}", stderr(&out));
    let token = cmd(&["machines", "add", "dana", "box"]).output().unwrap();
    assert!(token.status.success());

    // An open live stream must not hold up the shutdown.
    let live = reqwest::get(format!("http://127.0.0.1:{listen}/live"))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let pid_file = data.path().join("clickhouse/server.pid");
    let ch_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(ch_pid));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = Instant::now();
    let status = serve.wait().unwrap();
    assert!(status.success(), "serve exited with {status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}:\n{}",
        stopping.elapsed(),
        serve_log()
    );
    drop(live);
    assert!(!pid_alive(ch_pid), "clickhouse child left running");
    assert!(!pid_file.exists());
}

/// `invites create` and `users reset-password` print one-time links that
/// the store knows, under the public URL.
#[tokio::test]
async fn invite_and_reset_links_are_printed() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "carol"]).await);
    let invite = ok(codestats(d, &["invites", "create", "--days", "2"]).await);
    let secret = invite
        .trim()
        .split_once("/signup?invite=")
        .unwrap_or_else(|| panic!("no invite link in {invite:?}"))
        .1;
    let row = sql::account_tokens::find(&db, sql::account_tokens::Kind::Invite, secret)
        .await
        .unwrap()
        .expect("the invite is in the store");
    assert!(row.expires_at > chrono::Utc::now().timestamp() as u32 + 86_400);
    let reset = ok(codestats(d, &["users", "reset-password", "CAROL"]).await);
    let secret = reset
        .trim()
        .split_once("/password-reset/")
        .unwrap_or_else(|| panic!("no reset link in {reset:?}"))
        .1;
    let row = sql::account_tokens::find(&db, sql::account_tokens::Kind::Reset, secret)
        .await
        .unwrap()
        .expect("the reset link is in the store");
    let carol = sql::accounts::get_user(&db, "carol").await.unwrap();
    assert_eq!(row.user_id, carol.user_id);
    fails(
        codestats(d, &["users", "reset-password", "nobody"]).await,
        &["not found"],
    );
}
