//! Deleting a machine while its plugin keeps sending: the delete refuses
//! the token first, waits until a running `serve` has stopped accepting it,
//! then deletes the pulses, so no pulse accepted meanwhile survives.

mod common;

use common::{Serve, codestats, ok};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

#[tokio::test]
async fn no_pulse_accepted_during_a_delete_survives_it() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "alice"]).await);
    let token = ok(codestats(d, &["machines", "add", "alice", "laptop"]).await);
    let token = token.trim().to_owned();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(d, data.path(), &[]).await;
    serve.wait_for("/healthz", |_| true).await;

    // The plugin: a pulse every 50 ms until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let plugin = {
        let (stop, accepted, url) = (stop.clone(), accepted.clone(), serve.url("/api/my/pulses"));
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({
                    "coded_at": chrono::Utc::now().to_rfc3339(),
                    "xps": [{"language": "Rust", "xp": 1}],
                });
                if let Ok(r) = client
                    .post(&url)
                    .header("x-api-token", &token)
                    .json(&body)
                    .send()
                    .await
                    && r.status() == 201
                {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        accepted.load(Ordering::Relaxed) > 0,
        "the plugin got no 201"
    );
    ok(codestats(d, &["machines", "delete", "alice", "laptop"]).await);
    // The plugin does not know: it keeps sending (and is refused).
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    plugin.await.unwrap();

    // Once ClickHouse has applied the delete, nothing of the machine is left.
    let started = std::time::Instant::now();
    loop {
        let pending: u64 = db
            .client()
            .query("SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0")
            .fetch_one()
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "delete not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left: u64 = db
        .client()
        .query("SELECT count() FROM pulses")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(left, 0, "pulses accepted during the delete survived it");
}
