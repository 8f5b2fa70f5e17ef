//! `POST /api/my/pulses` over real HTTP into the real ClickHouse.

mod common;

use common::{TestApp, eventually, now_secs, timestamp};
use reqwest::StatusCode;
use serde_json::json;
use sql::{clickhouse::Row, test_db};
use std::time::Duration;

#[derive(Debug, Row, serde::Deserialize, PartialEq)]
struct Stored {
    coded_at: u32,
    utc_offset: i16,
    language: String,
    xp: u32,
}

async fn stored_rows(app: &TestApp) -> Vec<Stored> {
    app.flush().await;
    app.db
        .client()
        .query("SELECT coded_at, utc_offset, language, xp FROM pulses ORDER BY coded_at, language")
        .fetch_all()
        .await
        .unwrap()
}

#[tokio::test]
async fn accepts_a_code_stats_pulse() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("nicd", "laptop", false).await;
    let coded_at = timestamp(60, 12 * 60);
    let r = app
        .post(
            &token,
            json!({"coded_at": coded_at, "xps": [{"language": "C++", "xp": 15}, {"language": "Elixir", "xp": 30}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body, json!({"ok": "Great success!"}));
    let utc = (now_secs() - 60) as u32;
    assert_eq!(
        stored_rows(&app).await,
        vec![
            Stored {
                coded_at: utc,
                utc_offset: 720,
                language: "C++".into(),
                xp: 15
            },
            Stored {
                coded_at: utc,
                utc_offset: 720,
                language: "Elixir".into(),
                xp: 30
            },
        ]
    );
}

#[tokio::test]
async fn every_offset_form_plugins_send() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("tz", "m", false).await;
    let base = chrono::Utc::now() - chrono::Duration::seconds(3600);
    let utc = base.timestamp() as u32;
    for (text, offset) in [
        (base.format("%Y-%m-%dT%H:%M:%SZ").to_string(), 0i16),
        (
            base.with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).unwrap())
                .format("%Y-%m-%dT%H:%M:%S%z")
                .to_string(),
            180,
        ),
        (
            base.with_timezone(&chrono::FixedOffset::west_opt(5 * 3600 + 1800).unwrap())
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string(),
            -330,
        ),
    ] {
        let r = app
            .post(
                &token,
                json!({"coded_at": text, "xps": [{"language": format!("L{offset}"), "xp": 1}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{text}: {:?}", r.body);
        let rows = stored_rows(&app).await;
        let row = rows
            .iter()
            .find(|r| r.language == format!("L{offset}"))
            .unwrap();
        assert_eq!((row.coded_at, row.utc_offset), (utc, offset), "{text}");
    }
}

#[tokio::test]
async fn refuses_bad_tokens_with_403() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("ann", "box", false).await;
    let body = json!({"coded_at": timestamp(0, 0), "xps": []}).to_string();
    let denied = json!({"error": "You must be authenticated"});
    for r in [
        app.post_raw(None, body.clone()).await,
        app.post_raw(Some("cst_nope"), body.clone()).await,
        app.post_raw(Some(""), body.clone()).await,
    ] {
        assert_eq!((r.status, &r.body), (StatusCode::FORBIDDEN, &denied));
    }
    // Two tokens, even both valid, are refused.
    let r = app
        .client
        .post(app.url("/api/my/pulses"))
        .header("X-API-Token", &token)
        .header("X-API-Token", &token)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A deactivated machine's token is refused.
    sql::accounts::set_machine_active(&app.db, "ann", "box", false)
        .await
        .unwrap();
    app.app.tokens.refresh(&app.db).await.unwrap();
    let r = app.post_raw(Some(&token), body).await;
    assert_eq!((r.status, &r.body), (StatusCode::FORBIDDEN, &denied));
    assert_eq!(app.stored().await.1, 0);
}

#[tokio::test]
async fn bad_pulses_get_400_and_store_nothing() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("val", "m", false).await;
    let now = timestamp(0, 0);
    let xp = |items: serde_json::Value| json!({"coded_at": now, "xps": items}).to_string();
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "Invalid xps format."),
        ("{}".into(), "Invalid xps format."),
        (json!({"xps": []}).to_string(), "Invalid xps format."),
        (json!({"coded_at": now}).to_string(), "Invalid xps format."),
        (
            json!({"coded_at": now, "xps": {"a": 1}}).to_string(),
            "Invalid xps format.",
        ),
        (
            json!({"coded_at": "last tuesday", "xps": []}).to_string(),
            "Invalid coded_at format.",
        ),
        (
            json!({"coded_at": "2016-04-24T01:43:56", "xps": []}).to_string(),
            "Invalid TZ offset!",
        ),
        (
            json!({"coded_at": "2016-04-24T01:43:56+3", "xps": []}).to_string(),
            "Invalid TZ offset!",
        ),
        (
            json!({"coded_at": timestamp(8 * 86400, 0), "xps": []}).to_string(),
            "Invalid date.",
        ),
        (
            xp(json!([{"language": "Rust", "xp": 5}, {"language": "Go", "xp": -1}])),
            "Invalid XP format.",
        ),
        (
            xp(json!([{"language": "Rust", "xp": 1.5}])),
            "Invalid XP format.",
        ),
        (
            xp(json!([{"language": "Rust", "xp": "5"}])),
            "Invalid XP format.",
        ),
        (
            xp(json!([{"language": null, "xp": 5}])),
            "Invalid XP format.",
        ),
        (
            xp(json!([{"language": "Rust", "xp": 100_001}])),
            "Invalid XP format.",
        ),
        (
            xp(json!([{"language": "x".repeat(256), "xp": 1}])),
            "Invalid XP format.",
        ),
        (
            xp(json!(vec![json!({"language": "a", "xp": 1}); 101])),
            "Too many xps in one pulse.",
        ),
    ];
    for (body, message) in cases {
        let r = app.post_raw(Some(&token), body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body, json!({ "error": message }), "{body}");
    }
    assert_eq!(app.stored().await, (0, 0));
}

#[tokio::test]
async fn oversized_body_gets_413_json() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("big", "m", false).await;
    let padding = " ".repeat(ingest::limits::MAX_BODY_BYTES);
    let body = format!(r#"{{"coded_at":"{}","xps":[]{padding}}}"#, timestamp(0, 0));
    let r = app.post_raw(Some(&token), body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("larger than 65536")
    );
}

#[tokio::test]
async fn limits_at_their_edges_are_accepted() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("edge", "m", false).await;
    let items: Vec<_> = (0..100)
        .map(|i| json!({"language": format!("lang{i}"), "xp": 100_000}))
        .collect();
    let r = app
        .post(
            &token,
            json!({"coded_at": timestamp(7 * 86400 - 60, 0), "xps": items}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .post(
            &token,
            json!({"coded_at": timestamp(0, 0), "xps": [{"language": "Zero", "xp": 0}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(app.stored().await, (10_000_000, 101));
}

#[tokio::test]
async fn future_pulses_become_now_and_keep_their_offset() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("fut", "m", false).await;
    let before = now_secs() as u32;
    let r = app
        .post(
            &token,
            json!({"coded_at": timestamp(-86400, 120), "xps": [{"language": "Rust", "xp": 3}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let rows = stored_rows(&app).await;
    assert!(rows[0].coded_at >= before && rows[0].coded_at <= now_secs() as u32);
    assert_eq!(rows[0].utc_offset, 120);
}

#[tokio::test]
async fn languages_are_canonical_case_insensitively() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("lang", "m", false).await;
    for (items, secs_ago) in [
        (json!([{"language": " JavaScript ", "xp": 1}]), 30),
        (
            json!([{"language": "javascript", "xp": 2}, {"language": "JAVASCRIPT", "xp": 3}, {"language": "", "xp": 4}]),
            20,
        ),
    ] {
        let r = app
            .post(
                &token,
                json!({"coded_at": timestamp(secs_ago, 0), "xps": items}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let rows = stored_rows(&app).await;
    let got: Vec<(&str, u32)> = rows.iter().map(|r| (r.language.as_str(), r.xp)).collect();
    assert_eq!(
        got,
        [("JavaScript", 1), ("JavaScript", 5), ("Plain text", 4)]
    );
    // A fresh process learns the canonical names from ClickHouse.
    let again = TestApp::start(app.db.clone()).await;
    let token2 = again.machine("lang2", "m", false).await;
    again
        .post(
            &token2,
            json!({"coded_at": timestamp(10, 0), "xps": [{"language": "JAVAscript", "xp": 7}]}),
        )
        .await;
    let rows = stored_rows(&again).await;
    assert!(rows.iter().all(|r| r.language != "JAVAscript"));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = TestApp::with_config(test_db!(), |c| {
        c.rate_per_minute = 60;
        c.rate_burst = 3;
    })
    .await;
    let token = app.machine("fast", "m", false).await;
    let other = app.machine("calm", "m", false).await;
    let body = || json!({"coded_at": timestamp(0, 0), "xps": [{"language": "Rust", "xp": 1}]});
    for _ in 0..3 {
        assert_eq!(app.post(&token, body()).await.status, StatusCode::CREATED);
    }
    let r = app.post(&token, body()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body["error"].is_string());
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Other tokens are not affected.
    assert_eq!(app.post(&other, body()).await.status, StatusCode::CREATED);
    assert_eq!(app.stored().await.0, 4);
}

#[tokio::test]
async fn other_methods_and_paths_answer_json_never_5xx_or_3xx() {
    let app = TestApp::start(test_db!()).await;
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/my/pulses"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = common::into_response(r).await;
    assert!(r.body["error"].is_string());
    let r = app.get("/api/my/pulses").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = app.get("/nope").await;
    assert_eq!(
        (r.status, r.body["error"].is_string()),
        (StatusCode::NOT_FOUND, true)
    );
    // A trailing slash is served, not redirected.
    let token = app.machine("slash", "m", false).await;
    let r = app
        .client
        .post(app.url("/api/my/pulses/"))
        .header("X-API-Token", &token)
        .body(json!({"coded_at": timestamp(0, 0), "xps": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn tokens_changed_by_the_cli_take_effect_within_5_seconds() {
    let app = TestApp::start(test_db!()).await;
    sql::accounts::add_user(&app.db, "late", "", false)
        .await
        .unwrap();
    let (_, token) = sql::accounts::add_machine(&app.db, "late", "m")
        .await
        .unwrap();
    let body = || json!({"coded_at": timestamp(0, 0), "xps": []});
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.post(&token, body()).await.status == StatusCode::CREATED
        })
        .await,
        "new token not accepted within 5 s"
    );
    let (_, new_token) = sql::accounts::regenerate_token(&app.db, "late", "m")
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.post(&token, body()).await.status == StatusCode::FORBIDDEN
                && app.post(&new_token, body()).await.status == StatusCode::CREATED
        })
        .await,
        "regenerated token not switched within 5 s"
    );
}

#[tokio::test]
async fn accepted_pulses_are_broadcast() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("Eve", "desk", true).await;
    let mut events = app.app.events.subscribe();
    let r = app
        .post(
            &token,
            json!({"coded_at": timestamp(5, -60), "xps": [{"language": "Go", "xp": 9}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let event = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.username, "Eve");
    assert!(event.private);
    assert_eq!(event.machine, "desk");
    assert_eq!(event.utc_offset, -60);
    assert_eq!(event.coded_at, now_secs() - 5);
    assert_eq!(
        event.xps,
        vec![ingest::events::XpItem {
            language: "Go".into(),
            xp: 9
        }]
    );
    // A refused pulse is not broadcast.
    app.post(&token, json!({"coded_at": "x", "xps": []})).await;
    assert!(events.try_recv().is_err());
}

/// 50 clients × 200 pulses at once: the stored XP is exactly what was
/// acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_lose_nothing_and_double_nothing() {
    const CLIENTS: usize = 50;
    const PULSES: usize = 200;
    let app = TestApp::with_config(test_db!(), |c| c.rate_per_minute = 1_000_000).await;
    let mut tokens = Vec::new();
    for i in 0..CLIENTS {
        tokens.push(
            app.machine(&format!("user{}", i % 10), &format!("m{i}"), false)
                .await,
        );
    }
    let url = app.url("/api/my/pulses");
    let tasks = tokens.into_iter().enumerate().map(|(i, token)| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut acked_xp, mut acked_rows) = (0u64, 0u64);
            for n in 0..PULSES {
                let xp = (i * PULSES + n) as u64 % 97 + 1;
                let body = json!({"coded_at": timestamp(n as i64, 0), "xps": [
                    {"language": "Rust", "xp": xp}, {"language": "Go", "xp": 1}, {"language": "SQL", "xp": 2}]});
                let r = client.post(&url).header("X-API-Token", &token).body(body.to_string()).send().await.unwrap();
                if r.status() == StatusCode::CREATED {
                    acked_xp += xp + 3;
                    acked_rows += 3;
                }
            }
            (acked_xp, acked_rows)
        })
    });
    let mut expected = (0, 0);
    for result in futures::future::join_all(tasks).await {
        let (xp, rows) = result.unwrap();
        expected.0 += xp;
        expected.1 += rows;
    }
    assert_eq!(
        expected.1,
        (CLIENTS * PULSES * 3) as u64,
        "every pulse acknowledged"
    );
    assert_eq!(app.stored().await, expected);
}

/// A token is a UUID, accepted as WakaTime clients may spell it (with
/// `waka_`, in capitals); a token of an earlier version (`cst_…`, stored
/// by its hash) keeps working.
#[tokio::test]
async fn tokens_work_in_every_spelling_and_old_tokens_keep_working() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("uma", "laptop", false).await;
    assert!(uuid_shaped(&token), "{token}");
    let body =
        || json!({"coded_at": timestamp(0, 0), "xps": [{"language": "Go", "xp": 1}]}).to_string();
    for spelling in [token.clone(), format!("waka_{token}"), token.to_uppercase()] {
        let r = app.post_raw(Some(&spelling), body()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{spelling}");
    }
    let r = app.post_raw(Some(&token.replace('-', "")), body()).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "not a spelling of the token"
    );

    let legacy = "cst_Zm9yIGEgdG9rZW4gb2YgYW4gZWFybGllciB2ZXJzaW9u";
    let user = sql::accounts::get_user(&app.db, "uma").await.unwrap();
    let machine = sql::accounts::Machine {
        machine_id: sql::accounts::fresh_id(),
        user_id: user.user_id,
        name: "old".into(),
        token_hash: sql::token::hash_hex(legacy),
        active: 1,
        created_at: 0,
        deleted: 0,
        version: sql::accounts::fresh_version(),
    };
    sql::accounts::insert_machines(&app.db, &[machine])
        .await
        .unwrap();
    app.app.tokens.refresh(&app.db).await.unwrap();
    assert_eq!(
        app.post_raw(Some(legacy), body()).await.status,
        StatusCode::CREATED
    );
    let lower = legacy.to_lowercase();
    assert_eq!(
        app.post_raw(Some(&lower), body()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.stored().await, (4, 4));
}

fn uuid_shaped(token: &str) -> bool {
    let groups: Vec<usize> = token.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12]
        && token.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && token.as_bytes()[14] == b'4'
}
