//! `GET /api/users/NAME`: the Code::Stats read API, answered from the
//! documents the rollups published (their numbers are checked against SQL
//! over raw pulses in the binary's `tests/rollups.rs`).

mod common;

use common::TestApp;
use reqwest::StatusCode;
use serde_json::json;
use sql::test_db;
use std::path::{Path, PathBuf};

/// The builder's layout, lower-cased names under `api/users/`.
fn file_of(username: &str) -> PathBuf {
    PathBuf::from("api/users").join(format!("{}.json", username.to_lowercase()))
}

fn coding_file_of(username: &str) -> PathBuf {
    PathBuf::from("api/coding").join(format!("{}.json", username.to_lowercase()))
}

async fn app_with_documents(db: sql::Db, dir: &Path) -> TestApp {
    let dir = dir.to_owned();
    TestApp::with_config(db, move |c| {
        c.read_api = Some(ingest::api::users::ReadApiFiles {
            dir,
            file_of,
            coding_file_of,
        });
    })
    .await
}

fn publish(dir: &Path, username: &str, doc: &serde_json::Value) {
    publish_at(&dir.join(file_of(username)), doc);
}

fn publish_at(path: &Path, doc: &serde_json::Value) {
    let path = path.to_owned();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // As the builder: a new file renamed over the old one.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn doc(user: &str, total: u64) -> serde_json::Value {
    json!({"user": user, "total_xp": total, "new_xp": 0, "machines": {}, "languages": {}, "dates": {}})
}

#[tokio::test]
async fn answers_the_published_document() {
    let site = tempfile::tempdir().unwrap();
    let app = app_with_documents(test_db!(), site.path()).await;
    app.machine("Nicd", "laptop", false).await;
    publish(site.path(), "Nicd", &doc("Nicd", 117));

    for path in ["/api/users/Nicd", "/api/users/NICD", "/api/users/nicd.json"] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body, doc("Nicd", 117), "{path}");
        assert_eq!(r.headers["access-control-allow-origin"], "*");
        assert_eq!(r.headers["content-type"], "application/json");
    }

    // Conditional requests, and a new rollup's document at once.
    let etag = app.get("/api/users/nicd").await.headers["etag"].clone();
    let r = app
        .client
        .get(app.url("/api/users/nicd"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    publish(site.path(), "Nicd", &doc("Nicd", 200));
    let r = app.get("/api/users/nicd").await;
    assert_eq!(r.body["total_xp"], 200);
    assert_ne!(r.headers["etag"], etag);

    // Coding time: its own document and path, the Code::Stats one unchanged.
    let coding = json!({"user": "Nicd", "total_seconds": 5400, "languages": {"Rust": 5400},
        "editors": {"Vim": 5400}, "dates": {"2026-11-26": 5400}});
    publish_at(&site.path().join(coding_file_of("Nicd")), &coding);
    let r = app.get("/api/users/NICD/coding-time").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, coding);
    assert_eq!(app.get("/api/users/nicd").await.body, doc("Nicd", 200));
}

#[tokio::test]
async fn private_unknown_and_unpublished_users_are_404() {
    let site = tempfile::tempdir().unwrap();
    let app = app_with_documents(test_db!(), site.path()).await;
    app.machine("hidden", "m", true).await;
    app.machine("fresh", "m", false).await;
    // A document left over from when the user was public is never served.
    publish(site.path(), "hidden", &doc("hidden", 5));
    publish_at(
        &site.path().join(coding_file_of("hidden")),
        &json!({"user": "hidden", "total_seconds": 60}),
    );
    for path in [
        "/api/users/hidden/coding-time",
        "/api/users/fresh/coding-time",
        "/api/users/hidden",
        "/api/users/HIDDEN",
        "/api/users/hidden.json",
        "/api/users/nobody",
        "/api/users/fresh",
        "/api/users/%ff",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            r.body,
            json!({"error": "User not found or private."}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_user_made_private_is_refused_before_the_next_rollup() {
    let site = tempfile::tempdir().unwrap();
    let app = app_with_documents(test_db!(), site.path()).await;
    app.machine("alice", "m", false).await;
    app.machine("bob", "m", false).await;
    publish(site.path(), "alice", &doc("alice", 1));
    publish(site.path(), "bob", &doc("bob", 2));
    assert_eq!(app.get("/api/users/alice").await.status, StatusCode::OK);

    // Through this process: at once.
    let alice = sql::accounts::set_private(&app.db, "alice", true)
        .await
        .unwrap();
    app.app.user_hidden(alice.user_id);
    assert_eq!(
        app.get("/api/users/alice").await.status,
        StatusCode::NOT_FOUND
    );

    // By another process (the CLI): within one refresh.
    sql::accounts::set_private(&app.db, "bob", true)
        .await
        .unwrap();
    let refused = common::eventually(ingest::tokens::TOKEN_REFRESH * 3, || async {
        app.get("/api/users/bob").await.status == StatusCode::NOT_FOUND
    })
    .await;
    assert!(refused, "bob still answered after the refresh interval");
}
