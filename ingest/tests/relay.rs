//! The live relay: two nodes (two `App`s with servers of their own) on one
//! database, each showing the other's pulses on its `/live`.

mod common;

use common::{
    TestApp, now_secs,
    sse::{Events, subscribe},
    timestamp,
};
use ingest::relay::{RELAY_FLUSH, RELAY_POLL};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sql::{live_events::LiveEvent, test_db};
use std::time::{Duration, Instant};

/// The longest a pulse may take to reach another node's feed.
const DEADLINE: Duration = Duration::from_secs(2);
/// Longer than a relayed pulse takes: what did not come by then is not
/// coming.
const QUIET: Duration =
    Duration::from_millis(RELAY_FLUSH.as_millis() as u64 + 2 * RELAY_POLL.as_millis() as u64);

async fn node(db: &sql::Db, relay: bool) -> TestApp {
    TestApp::with_config(db.clone(), |c| c.live_relay = relay).await
}

/// Every node learns the tokens and users made through any of them.
async fn refresh(nodes: &[&TestApp]) {
    for node in nodes {
        node.app.tokens.refresh(&node.db).await.unwrap();
        node.app.visibility.refresh(&node.db).await.unwrap();
    }
}

fn pulse(language: &str, xp: u32) -> Value {
    json!({"coded_at": timestamp(30, 0), "xps": [{"language": language, "xp": xp}]})
}

async fn post(node: &TestApp, token: &str, body: Value) {
    let r = node.post(token, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

/// The next front-page event's user and first XP.
async fn next(events: &mut Events) -> (String, u64) {
    let (_, data) = events.next().await.unwrap();
    (
        data["user"].as_str().unwrap().to_owned(),
        data["xps"][0]["xp"].as_u64().unwrap(),
    )
}

/// Posts on `from` and waits for the pulse on `to_feed`: how long it took.
async fn relayed(
    from: &TestApp,
    token: &str,
    to_feed: &mut Events,
    user: &str,
    xp: u32,
) -> Duration {
    let started = Instant::now();
    post(from, token, pulse("Rust", xp)).await;
    assert_eq!(next(to_feed).await, (user.to_owned(), u64::from(xp)));
    started.elapsed()
}

#[tokio::test]
async fn a_pulse_on_one_node_is_on_the_others_feed_within_2_s_once() {
    let db = test_db!();
    let (a, b) = (node(&db, true).await, node(&db, true).await);
    let alice = a.machine("alice", "laptop", false).await;
    let bob = b.machine("bob", "desk", false).await;
    refresh(&[&a, &b]).await;
    let mut a_front = subscribe(&a, "/live", None).await;
    let mut b_front = subscribe(&b, "/live", None).await;
    let mut b_alice = subscribe(&b, "/live/users/alice", None).await;

    let a_to_b = relayed(&a, &alice, &mut b_front, "alice", 1).await;
    assert_eq!(next(&mut a_front).await, ("alice".into(), 1));
    let (_, profile) = b_alice.next().await.unwrap();
    assert_eq!(profile["machine"], "laptop");
    assert_eq!(profile["xps"], json!([{"language": "Rust", "xp": 1}]));

    // b's own pulse: at once on b, relayed to a, and not back to b.
    let b_to_a = relayed(&b, &bob, &mut a_front, "bob", 2).await;
    assert_eq!(next(&mut b_front).await, ("bob".into(), 2));
    let again = relayed(&a, &alice, &mut b_front, "alice", 3).await;
    assert_eq!(next(&mut a_front).await, ("alice".into(), 3));

    eprintln!("relay latency: a→b {a_to_b:?}, b→a {b_to_a:?}, a→b {again:?}");
    for latency in [a_to_b, b_to_a, again] {
        assert!(latency < DEADLINE, "{latency:?}");
    }
    // Every poll reads the last seconds again: still nothing twice.
    let (a_more, b_more) = tokio::join!(a_front.next_within(QUIET), b_front.next_within(QUIET));
    assert!(a_more.is_err() && b_more.is_err(), "a pulse twice");
    assert_eq!(a.app.live.ring_len(), 3);
    assert_eq!(b.app.live.ring_len(), 3);
}

#[tokio::test]
async fn private_users_never_reach_another_nodes_feed() {
    let db = test_db!();
    let (a, b) = (node(&db, true).await, node(&db, true).await);
    let ghost = a.machine("ghost", "m", true).await;
    let carol = a.machine("carol", "m", false).await;
    refresh(&[&a, &b]).await;
    let ghost_id = sql::accounts::get_user(&db, "ghost").await.unwrap().user_id;
    let mut b_front = subscribe(&b, "/live", None).await;

    post(&a, &ghost, pulse("Secret", 99)).await;
    // As a node would write it that had not yet learnt ghost is private:
    // b decides by its own visibility.
    let event_ms = u64::try_from(now_secs()).unwrap() * 1000;
    let row = LiveEvent {
        node_id: 1,
        event_ms,
        seq: 1,
        user_id: ghost_id,
        username: "ghost".into(),
        machine: "m".into(),
        coded_at: u32::try_from(now_secs()).unwrap(),
        utc_offset: 0,
        languages: vec!["Secret".into()],
        xps: vec![98],
    };
    sql::live_events::insert(&db, &[row]).await.unwrap();
    let started = Instant::now();
    while b.app.live.ring_len() == 0 {
        assert!(
            started.elapsed() < DEADLINE,
            "the row never reached b's hub"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    post(&a, &carol, pulse("C", 7)).await;
    assert_eq!(next(&mut b_front).await, ("carol".into(), 7));
    let mut replay = subscribe(&b, "/live", Some(0)).await;
    assert_eq!(next(&mut replay).await, ("carol".into(), 7));
    let r = b.get("/live/users/ghost").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Nor was a's own relayed: only the row written above is there.
    let rows: u64 = db
        .client()
        .query("SELECT count() FROM live_events WHERE user_id = ?")
        .bind(ghost_id)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn without_the_relay_a_node_shows_its_own_pulses_only() {
    let db = test_db!();
    let (a, b) = (node(&db, false).await, node(&db, false).await);
    let alice = a.machine("alice", "m", false).await;
    refresh(&[&a, &b]).await;
    let mut a_front = subscribe(&a, "/live", None).await;
    let mut b_front = subscribe(&b, "/live", None).await;
    post(&a, &alice, pulse("Rust", 1)).await;
    assert_eq!(next(&mut a_front).await, ("alice".into(), 1));
    assert!(b_front.next_within(QUIET).await.is_err());
    assert!(a.app.relay.is_none());
    let rows: u64 = db
        .client()
        .query("SELECT count() FROM live_events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
