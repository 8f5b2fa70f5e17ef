//! `GET /live` and `GET /live/users/NAME` over real HTTP, read with an SSE
//! client (`common::sse`), fed by pulses posted to the real ingest endpoint.

mod common;

use common::{TestApp, eventually, sse::subscribe, timestamp};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sql::test_db;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

fn pulse(language: &str, xp: u32) -> Value {
    json!({"coded_at": timestamp(30, 0), "xps": [{"language": language, "xp": xp}]})
}

async fn post(app: &TestApp, token: &str, body: Value) {
    let r = app.post(token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

#[tokio::test]
async fn a_pulse_reaches_the_front_and_profile_streams() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("Alice", "laptop", false).await;
    let mut front = subscribe(&app, "/live", None).await;
    // case-insensitive, like the read API
    let mut profile = subscribe(&app, "/live/users/aLICE", None).await;
    for headers in [&front.headers, &profile.headers] {
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers["x-accel-buffering"], "no");
        assert_eq!(headers["access-control-allow-origin"], "*");
    }

    let offset = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
    let coded_at = chrono::Utc::now() - chrono::Duration::seconds(90);
    let utc = coded_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let local = coded_at
        .with_timezone(&offset)
        .format("%Y-%m-%dT%H:%M:%S+02:00")
        .to_string();
    post(
        &app,
        &token,
        json!({"coded_at": local, "xps": [{"language": "Rust", "xp": 12}, {"language": "SQL", "xp": 3}]}),
    )
    .await;

    let xps = json!([{"language": "Rust", "xp": 12}, {"language": "SQL", "xp": 3}]);
    let (front_id, data) = front.next().await.unwrap();
    assert_eq!(data, json!({"user": "Alice", "xps": xps, "coded_at": utc}));
    let (profile_id, data) = profile.next().await.unwrap();
    assert_eq!(
        data,
        json!({"xps": xps, "coded_at": utc, "coded_at_local": local, "machine": "laptop"})
    );
    assert_eq!(front_id, profile_id);

    post(&app, &token, pulse("Rust", 1)).await;
    assert!(front.next().await.unwrap().0 > front_id);
    assert!(profile.next().await.unwrap().0 > profile_id);
}

#[tokio::test]
async fn private_users_stay_off_the_feed() {
    let app = TestApp::start(test_db!()).await;
    let ghost = app.machine("ghost", "m", true).await;
    let bob = app.machine("bob", "m", false).await;
    let carol = app.machine("carol", "m", false).await;

    for path in [
        "/live/users/ghost",
        "/live/users/GHOST",
        "/live/users/nobody",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body, json!({"error": "User not found or private."}));
    }

    let mut front = subscribe(&app, "/live", None).await;
    post(&app, &ghost, pulse("Secret", 99)).await;
    post(&app, &bob, pulse("Go", 5)).await;
    let (_, data) = front.next().await.unwrap();
    assert_eq!(data["user"], "bob");
    assert_eq!(data["xps"], json!([{"language": "Go", "xp": 5}]));

    // bob turns private (by another process, as the CLI does) while his
    // profile is open: within one refresh his open stream ends, it cannot
    // reopen, and nothing of his is replayed, from before the change or after.
    let mut bob_profile = subscribe(&app, "/live/users/bob", None).await;
    sql::accounts::set_private(&app.db, "bob", true)
        .await
        .unwrap();
    assert!(bob_profile.ends().await);
    assert!(
        eventually(ingest::tokens::TOKEN_REFRESH * 3, || async {
            // the status only: a 200 is a stream that never ends
            let r = app.client.get(app.url("/live/users/bob")).send().await;
            r.unwrap().status() == StatusCode::NOT_FOUND
        })
        .await
    );
    post(&app, &bob, pulse("Go", 6)).await;
    post(&app, &carol, pulse("C", 7)).await;
    let (_, data) = front.next().await.unwrap();
    assert_eq!(data["user"], "carol");
    let mut resumed = subscribe(&app, "/live", Some(0)).await;
    let mut users = Vec::new();
    post(&app, &carol, pulse("C", 8)).await;
    while users.len() < 2 {
        users.push(resumed.next().await.unwrap().1["user"].clone());
    }
    assert_eq!(users, ["carol", "carol"], "nothing of bob's");
}

#[tokio::test]
async fn a_privacy_change_through_the_server_empties_the_replay_at_once() {
    let app = TestApp::start(test_db!()).await;
    let dana = app.machine("dana", "m", false).await;
    let erin = app.machine("erin", "m", false).await;
    post(&app, &dana, pulse("Rust", 1)).await;
    post(&app, &erin, pulse("Go", 2)).await;
    let mut dana_profile = subscribe(&app, "/live/users/dana", None).await;
    let user = sql::accounts::set_private(&app.db, "dana", true)
        .await
        .unwrap();
    app.app.user_hidden(user.user_id);
    // No waiting for a refresh: gone from the ring and the profile now.
    assert!(dana_profile.ends().await);
    let r = app.client.get(app.url("/live/users/dana")).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::NOT_FOUND);
    // Her token still works until the refresh; her pulse is not shown.
    post(&app, &dana, pulse("Rust", 3)).await;
    post(&app, &erin, pulse("Go", 4)).await;
    let mut resumed = subscribe(&app, "/live", Some(0)).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (_, data) = resumed.next().await.unwrap();
        seen.push((data["user"].clone(), data["xps"][0]["xp"].clone()));
    }
    assert_eq!(seen, [(json!("erin"), json!(2)), (json!("erin"), json!(4))]);
}

#[tokio::test]
async fn last_event_id_resumes_where_the_client_left() {
    let app = TestApp::start(test_db!()).await;
    let token = app.machine("dave", "m", false).await;
    let mut front = subscribe(&app, "/live", None).await;
    let mut profile = subscribe(&app, "/live/users/dave", None).await;
    for xp in 1..=3 {
        post(&app, &token, pulse("Rust", xp)).await;
    }
    let mut last = 0;
    for _ in 1..=3 {
        last = front.next().await.unwrap().0;
        assert_eq!(profile.next().await.unwrap().0, last);
    }
    drop((front, profile));

    // missed while away
    for xp in 4..=5 {
        post(&app, &token, pulse("Rust", xp)).await;
    }
    let mut front = subscribe(&app, "/live", Some(last)).await;
    let mut profile = subscribe(&app, "/live/users/dave", Some(last)).await;
    post(&app, &token, pulse("Rust", 6)).await;
    for events in [&mut front, &mut profile] {
        let mut xps = Vec::new();
        for _ in 4..=6 {
            let (id, data) = events.next().await.unwrap();
            assert!(id > last);
            xps.push(data["xps"][0]["xp"].as_u64().unwrap());
        }
        assert_eq!(xps, [4, 5, 6]);
    }

    // without Last-Event-ID: only what comes next
    let mut fresh = subscribe(&app, "/live", None).await;
    post(&app, &token, pulse("Rust", 7)).await;
    assert_eq!(fresh.next().await.unwrap().1["xps"][0]["xp"], 7);
}

/// Subscribers that never read must not slow ingest down or make anything
/// grow: every post still gets 201, and every queue stays within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stuck_subscribers_do_not_hold_up_ingest() {
    const STUCK: usize = 20;
    const PULSES: usize = 1200;
    let app = TestApp::with_config(test_db!(), |c| {
        c.rate_per_minute = 1_000_000;
        c.rate_burst = 1_000_000;
    })
    .await;
    let token = app.machine("flood", "m", false).await;

    let mut stuck = Vec::new();
    for i in 0..STUCK {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        let path = if i % 2 == 0 {
            "/live"
        } else {
            "/live/users/flood"
        };
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stuck.push(stream); // never read
    }
    assert!(
        eventually(WAIT, || async {
            app.app
                .live
                .stats
                .open
                .load(std::sync::atomic::Ordering::Relaxed)
                >= STUCK as u64
        })
        .await
    );

    // one subscriber that reads
    let mut reader = subscribe(&app, "/live", None).await;
    let reading = tokio::spawn(async move {
        let mut n = 0;
        while n < PULSES && reader.next().await.is_some() {
            n += 1;
        }
        n
    });

    // ~7 KB per event, so each stuck connection is owed megabytes: far more
    // than its socket buffers hold.
    let xps: Vec<Value> = (0..100)
        .map(|i| json!({"language": format!("Language number {i:03} with a long name"), "xp": 1}))
        .collect();
    let body = json!({"coded_at": timestamp(30, 0), "xps": xps}).to_string();
    let mut statuses = futures::stream::iter(0..PULSES)
        .map(|_| {
            let (client, url, token, body) = (
                app.client.clone(),
                app.url("/api/my/pulses"),
                token.clone(),
                body.clone(),
            );
            async move {
                client
                    .post(url)
                    .header("x-api-token", token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(32);
    let mut created = 0;
    let mut max_front = 0;
    let mut max_events = 0;
    while let Some(status) = statuses.next().await {
        assert_eq!(status, StatusCode::CREATED);
        created += 1;
        max_front = max_front.max(app.app.live.front_queued());
        max_events = max_events.max(app.app.events.len());
    }
    assert_eq!(created, PULSES);
    assert!(max_events <= ingest::events::EVENT_BUFFER);
    assert!(max_front <= ingest::live::FRONT_BUFFER, "{max_front}");
    assert!(app.app.live.ring_len() <= ingest::live::RING_EVENTS);
    assert_eq!(
        tokio::time::timeout(WAIT, reading).await.unwrap().unwrap(),
        PULSES,
        "the reading subscriber got every pulse"
    );
    assert_eq!(
        app.app
            .live
            .stats
            .hub_missed
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // each stuck one is still connected, holding nothing up, or was dropped
    // for falling a channel's length behind while it still read a little
    let stats = &app.app.live.stats;
    let open = stats.open.load(std::sync::atomic::Ordering::Relaxed);
    let dropped = stats.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        open + dropped >= STUCK as u64,
        "{open} open, {dropped} dropped"
    );
    drop(stuck);
}

/// A browser that reconnects to a restarted server with the old run's last
/// id gets everything the new run has kept, not a gap.
#[tokio::test]
async fn last_event_id_from_an_earlier_run_replays_the_new_run() {
    let db = test_db!();
    let old = TestApp::start(db.clone()).await;
    let token = old.machine("erin", "m", false).await;
    let mut front = subscribe(&old, "/live", None).await;
    post(&old, &token, pulse("Rust", 1)).await;
    // The old run's first id: with ids restarting at 1, the new run's own
    // first event would look already seen.
    let last = front.next().await.unwrap().0;
    drop((front, old));

    // A new process, a few pulses in, before the browser is back.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new = TestApp::start(db).await;
    for xp in 10..=11 {
        post(&new, &token, pulse("Rust", xp)).await;
    }
    let mut front = subscribe(&new, "/live", Some(last)).await;
    for expected in [10, 11] {
        let (id, data) = front.next().await.unwrap();
        assert!(id > last, "{id} after {last}");
        assert_eq!(data["xps"][0]["xp"], expected);
    }
}
