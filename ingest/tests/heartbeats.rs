//! The WakaTime heartbeat API over real HTTP into the real ClickHouse:
//! shapes, keys, copies, old heartbeats, limits, and the status bar.

mod common;

use base64::Engine as _;
use common::{TestApp, into_response, now_secs};
use ingest::limits::{MAX_HEARTBEAT_BODY_BYTES, MAX_HEARTBEATS_PER_REQUEST};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sql::{clickhouse::Row, test_db};

const UA: &str = "wakatime/13.1.0 (Linux-6.1.0-x86_64-with-glibc2.36) Python3.11.7.final.0 vim/9.0 vim-wakatime/11.0.0";
const BULK: &str = "/api/v1/users/current/heartbeats.bulk";
const SINGLE: &str = "/api/v1/users/current/heartbeats";

fn basic(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

fn beat(time: f64, entity: &str, language: &str) -> Value {
    json!({
        "time": time, "entity": entity, "type": "file", "category": null,
        "is_write": true, "project": "codestats", "branch": "main", "language": language,
        "dependencies": [], "lines": 10, "lineno": 3, "cursorpos": 7, "user_agent": UA
    })
}

async fn send(app: &TestApp, path: &str, auth: Option<String>, body: &Value) -> common::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("user-agent", UA)
        .header("x-machine-name", "laptop")
        .header("timezone", "Europe/Helsinki")
        .body(body.to_string());
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    into_response(request.send().await.unwrap()).await
}

#[derive(Debug, Row, serde::Deserialize, PartialEq)]
struct Stored {
    time: u32,
    time_ms: u16,
    utc_offset: i16,
    entity_hash: String,
    entity: String,
    project: String,
    language: String,
    is_write: u8,
    lines: u32,
    editor: String,
    os: String,
    machine: String,
}

async fn stored(app: &TestApp) -> Vec<Stored> {
    app.flush().await;
    app.db
        .client()
        .query(
            "SELECT time, time_ms, utc_offset, entity_hash, entity, project, language, is_write, \
             lines, editor, os, machine FROM heartbeats ORDER BY time, time_ms",
        )
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test]
async fn bulk_and_single_shapes_as_wakatime_answers_them() {
    let app = TestApp::start(test_db!()).await;
    let key = app.machine("nicd", "token-machine", false).await;
    let t = (now_secs() - 600) as f64 + 0.817;

    let r = send(
        &app,
        BULK,
        Some(basic(&key)),
        &json!([
            beat(t, "/home/me/src/main.rs", "Rust"),
            beat(t + 60.0, "/home/me/src/lib.rs", "Rust")
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let responses = r.body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 2);
    for item in responses {
        assert_eq!(item[1], 201);
        assert_eq!(item[0]["data"]["language"], "Rust");
    }

    let r = send(
        &app,
        SINGLE,
        Some(basic(&key)),
        &beat(t + 120.0, "/x.py", "Python"),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["data"]["language"], "Python");
    assert_eq!(r.body["data"]["editor"], "Vim");

    let rows = stored(&app).await;
    assert_eq!(rows.len(), 3);
    let first = &rows[0];
    assert_eq!((first.time, first.time_ms), (t as u32, 817));
    // Helsinki is UTC+2 or +3.
    assert!(
        [120, 180].contains(&first.utc_offset),
        "{}",
        first.utc_offset
    );
    assert_eq!((first.editor.as_str(), first.os.as_str()), ("Vim", "Linux"));
    assert_eq!(
        (first.machine.as_str(), first.project.as_str()),
        ("laptop", "codestats")
    );
    assert_eq!((first.is_write, first.lines), (1, 10));
    // The path is private: only its hash is stored.
    assert_eq!(first.entity, "");
    let user = sql::accounts::find_user(&app.db, "nicd")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.entity_hash,
        sql::heartbeats::entity_hash(user.user_id, "/home/me/src/main.rs")
    );
    let anywhere: u64 = app
        .db
        .client()
        .query("SELECT count() FROM heartbeats WHERE positionCaseInsensitive(entity, 'main.rs') > 0 OR positionCaseInsensitive(entity_hash, 'main') > 0")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(anywhere, 0);
}

#[tokio::test]
async fn every_way_of_sending_the_key_under_every_prefix() {
    let app = TestApp::start(test_db!()).await;
    let key = app.machine("keys", "m", false).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut time = (now_secs() - 3000) as f64;
    let mut sent = 0;
    for prefix in ingest::WAKATIME_PREFIXES {
        for (auth, query) in [
            (Some(basic(&key)), ""),
            (Some(basic(&format!("waka_{key}"))), ""),
            (Some(format!("Basic {}", b64(&format!("{key}:")))), ""),
            (Some(format!("Bearer {key}")), ""),
            (Some(format!("Bearer waka_{}", key.to_uppercase())), ""),
            (Some(format!("Bearer {}", b64(&key))), ""),
            (None, "?api_key="),
        ] {
            time += 1.0;
            let path = format!("{prefix}/users/current/heartbeats.bulk{query}");
            let path = if query.is_empty() {
                path
            } else {
                format!("{path}{key}")
            };
            let r = send(&app, &path, auth.clone(), &json!([beat(time, "/a", "Go")])).await;
            assert_eq!(
                r.status,
                StatusCode::ACCEPTED,
                "{path} {auth:?}: {:?}",
                r.body
            );
            sent += 1;
        }
    }
    assert_eq!(stored(&app).await.len(), sent);

    // Refusals: 401 in JSON, nothing stored.
    let wrong = "0b7c4e8a-4bd3-4f0e-9a6e-2f1d3c5b7a90";
    for auth in [
        None,
        Some(basic(wrong)),
        Some(format!("Bearer {wrong}")),
        Some("Basic !!!".to_owned()),
        Some(format!("Token {key}")),
    ] {
        let r = send(
            &app,
            BULK,
            auth.clone(),
            &json!([beat(time + 5.0, "/a", "Go")]),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(r.body["error"].is_string(), "{:?}", r.body);
    }
    assert_eq!(stored(&app).await.len(), sent);
}

#[tokio::test]
async fn the_same_heartbeat_twice_is_stored_once() {
    let app = TestApp::start(test_db!()).await;
    let key = app.machine("twice", "m", false).await;
    let t = (now_secs() - 100) as f64 + 0.25;
    let one = beat(t, "/src/a.rs", "Rust");
    // Twice in one request, then again in another (a client retrying).
    let r = send(&app, BULK, Some(basic(&key)), &json!([one, one])).await;
    assert_eq!(r.body["responses"][1][1], 201);
    let r = send(&app, SINGLE, Some(basic(&key)), &one).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A heartbeat that differs is another one.
    let mut other = one.clone();
    other["is_write"] = json!(false);
    send(&app, SINGLE, Some(basic(&key)), &other).await;
    assert_eq!(stored(&app).await.len(), 2);

    // After a restart the in-memory memory is gone; the table still keeps one.
    let fresh = TestApp::start(app.db.clone()).await;
    fresh.app.tokens.refresh(&fresh.db).await.unwrap();
    send(&fresh, SINGLE, Some(basic(&key)), &one).await;
    fresh.flush().await;
    let user = sql::accounts::find_user(&app.db, "twice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sql::heartbeats::count_of_user(&app.db, user.user_id)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn old_heartbeats_are_answered_and_dropped_bad_ones_refused_alone() {
    let app = TestApp::start(test_db!()).await;
    let key = app.machine("queue", "m", false).await;
    let now = now_secs() as f64;
    let old = now - ingest::limits::MAX_HEARTBEAT_AGE.as_secs_f64() - 3600.0;
    let r = send(
        &app,
        BULK,
        Some(basic(&key)),
        &json!([
            beat(old, "/old", "Go"),
            beat(now - 10.0, "/new", "Go"),
            beat(now + 86_400.0, "/future", "Go"),
            {"entity": "/no-time"},
            "not an object",
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let codes: Vec<u64> = r.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[1].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [201, 201, 400, 400, 400]);
    assert_eq!(r.body["responses"][2][0]["error"], "time is in the future");
    let rows = stored(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].time, (now - 10.0) as u32);

    // A single bad heartbeat is a 400 of its own.
    let r = send(&app, SINGLE, Some(basic(&key)), &json!({"time": "soon"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body, json!({"error": "time must be Unix seconds"}));
}

#[tokio::test]
async fn limits_on_items_and_bytes() {
    let app = TestApp::start(test_db!()).await;
    let key = app.machine("limits", "m", false).await;
    let now = now_secs() as f64;
    let many: Vec<Value> = (0..=MAX_HEARTBEATS_PER_REQUEST)
        .map(|i| beat(now - i as f64, "/a", "Go"))
        .collect();
    let r = send(&app, BULK, Some(basic(&key)), &Value::Array(many.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].as_str().unwrap().contains("too many"));
    // Exactly the limit is fine.
    let r = send(
        &app,
        BULK,
        Some(basic(&key)),
        &Value::Array(many[..MAX_HEARTBEATS_PER_REQUEST].to_vec()),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    let huge = json!([{"time": now, "entity": "x".repeat(MAX_HEARTBEAT_BODY_BYTES)}]);
    let r = send(&app, BULK, Some(basic(&key)), &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body["error"].is_string());
    for body in ["{", "42", "null"] {
        let r = into_response(
            app.client
                .post(app.url(BULK))
                .header("authorization", basic(&key))
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(r.body["error"].is_string());
    }
    assert_eq!(stored(&app).await.len(), MAX_HEARTBEATS_PER_REQUEST);
}

#[tokio::test]
async fn entities_are_kept_only_when_the_operator_opts_in() {
    let app = TestApp::with_config(test_db!(), |c| c.store_entities = true).await;
    let key = app.machine("opted", "m", false).await;
    send(
        &app,
        SINGLE,
        Some(basic(&key)),
        &beat((now_secs() - 5) as f64, "/src/x.rs", "Rust"),
    )
    .await;
    assert_eq!(stored(&app).await[0].entity, "/src/x.rs");
}

#[tokio::test]
async fn status_bar_and_summaries_show_the_coded_time() {
    let app = TestApp::start(test_db!()).await;
    let key = app.machine("bar", "m", false).await;
    // Today (UTC) at 00:00:10, or yesterday's if today is too young: three
    // heartbeats a minute apart (2 minutes), then one 20 minutes later
    // (past the 15-minute timeout: adds nothing), then one a minute after
    // that in Python (1 minute of Python).
    let now = now_secs();
    let midnight = now - now.rem_euclid(86_400);
    let start = if now - midnight >= 1500 {
        midnight + 10
    } else {
        midnight - 86_400 + 10
    } as f64;
    let beats = json!([
        beat(start, "/a.rs", "Rust"),
        beat(start + 60.0, "/a.rs", "Rust"),
        beat(start + 120.0, "/a.rs", "Rust"),
        beat(start + 1320.0, "/b.py", "Python"),
        beat(start + 1380.0, "/b.py", "Python"),
    ]);
    let r = send(&app, BULK, Some(basic(&key)), &beats).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.flush().await;

    let utc_day = chrono::DateTime::from_timestamp(start as i64, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let get = |path: String| {
        let request = app
            .client
            .get(app.url(&path))
            .header("authorization", basic(&key))
            .header("timezone", "UTC");
        async move { into_response(request.send().await.unwrap()).await }
    };
    let r = get(format!(
        "/api/v1/users/current/summaries?start={utc_day}&end={utc_day}"
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let day = &r.body["data"][0];
    assert_eq!(day["grand_total"]["total_seconds"], 180.0);
    assert_eq!(day["grand_total"]["text"], "3 mins");
    assert_eq!(day["languages"][0]["name"], "Rust");
    assert_eq!(day["languages"][0]["total_seconds"], 120.0);
    assert_eq!(day["languages"][1]["name"], "Python");
    assert_eq!(day["editors"][0]["name"], "Vim");
    assert_eq!(day["machines"][0]["name"], "laptop");
    assert_eq!(r.body["cumulative_total"]["seconds"], 180);

    if utc_day == chrono::Utc::now().format("%Y-%m-%d").to_string() {
        let r = get("/api/v1/users/current/statusbar/today".into()).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["data"]["grand_total"]["text"], "3 mins");
        assert_eq!(r.body["data"]["range"]["date"], utc_day.as_str());
    }

    // Bad ranges and keys.
    let r = get("/api/v1/users/current/summaries?start=2026-01-02&end=2026-01-01".into()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = into_response(
        app.client
            .get(app.url("/api/v1/users/current/statusbar/today"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
