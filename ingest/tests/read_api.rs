//! `GET /api/users/NAME`: the Code::Stats read API.

mod common;

use common::{TestApp, now_secs, timestamp};
use reqwest::StatusCode;
use serde_json::json;
use sql::{pulses::PulseRow, test_db};

fn row(
    user_id: u64,
    machine_id: u64,
    coded_at: i64,
    offset: i16,
    language: &str,
    xp: u32,
) -> PulseRow {
    PulseRow {
        pulse_id: rand_id(),
        batch_id: 1,
        user_id,
        machine_id,
        coded_at: coded_at as u32,
        utc_offset: offset,
        language: language.into(),
        xp,
        received_at: now_secs() as u32,
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn answers_the_code_stats_shape() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("Nicd", "laptop", false).await;
    app.machine("Nicd", "desk", false).await;
    let user = sql::accounts::get_user(&app.db, "nicd").await.unwrap();
    let machines = sql::accounts::list_machines(&app.db, &user).await.unwrap();
    let desk = machines
        .iter()
        .find(|m| m.name == "desk")
        .unwrap()
        .machine_id;

    // Two days ago, 11:00 UTC at +14:00 is 01:00 the next local day.
    let day = (now_secs() / 86400 - 2) * 86400;
    let old = day + 11 * 3600;
    sql::pulses::insert(
        &app.db,
        &[
            row(user.user_id, desk, old, 14 * 60, "Rust", 100),
            row(user.user_id, desk, old, -12 * 60, "Elixir", 10),
        ],
    )
    .await
    .unwrap();
    // A fresh pulse through the API counts as new.
    let r = app
        .post(
            &token,
            json!({"coded_at": timestamp(60, 0), "xps": [{"language": "Rust", "xp": 7}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let date = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let today = date(now_secs() - 60);
    let mut dates = serde_json::Map::new();
    dates.insert(date(old + 14 * 3600), json!(100));
    dates.insert(date(old - 12 * 3600), json!(10));
    *dates.entry(today).or_insert(json!(0)) = json!(
        dates
            .get(&date(now_secs() - 60))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            + 7
    );

    // The static site's spelling of the same resource answers the same.
    let r = app.get("/api/users/nicd.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/api/users/NICD").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    assert_eq!(
        r.body,
        json!({
            "user": "Nicd",
            "total_xp": 117,
            "new_xp": 7,
            "machines": {"desk": {"xps": 110, "new_xps": 0}, "laptop": {"xps": 7, "new_xps": 7}},
            "languages": {"Rust": {"xps": 107, "new_xps": 7}, "Elixir": {"xps": 10, "new_xps": 0}},
            "dates": dates,
        })
    );
}

#[tokio::test]
async fn private_and_unknown_users_are_404() {
    let app = TestApp::start(test_db!()).await;
    app.machine("hidden", "m", true).await;
    let user = app.machine("empty", "m", false).await;
    let _ = user;
    for path in [
        "/api/users/hidden",
        "/api/users/HIDDEN",
        "/api/users/nobody",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body, json!({"error": "User not found or private."}));
    }
    let r = app.get("/api/users/empty").await;
    assert_eq!(
        r.body,
        json!({"user": "empty", "total_xp": 0, "new_xp": 0, "machines": {}, "languages": {}, "dates": {}})
    );
}
