//! Output to a pipe whose reader has gone (`codestats users list | head`)
//! ends the command quietly.

use std::process::{Command, Stdio};

mod common;

use common::{BIN, codestats, ok, stderr};

/// Runs `codestats ARGS` with stdout to a pipe whose reader is closed.
async fn into_closed_pipe(database: &str, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(BIN)
        .args(args)
        .envs(sql::testing::binary_env(database).await)
        .env("RUST_BACKTRACE", "1")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run codestats")
}

#[tokio::test]
async fn listing_into_a_closed_pipe_ends_quietly() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "alice"]).await);
    ok(codestats(d, &["machines", "add", "alice", "box"]).await);
    for args in [
        &["users", "list"][..],
        &["machines", "list", "alice"],
        &["migrate"],
    ] {
        let out = into_closed_pipe(d, args).await;
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {:?}: {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}
