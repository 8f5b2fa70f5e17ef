//! Incremental rollups touch only the users that changed.

use jobs::{Rollups, Scope};
use sql::{pulses::PulseRow, test_db};

fn pulse(user_id: u64, machine_id: u64, xp: u32) -> PulseRow {
    let now = chrono::Utc::now().timestamp() as u32;
    PulseRow {
        pulse_id: rand::random(),
        batch_id: rand::random(),
        user_id,
        machine_id,
        coded_at: now - 60,
        utc_offset: 0,
        language: "Rust".into(),
        xp,
        received_at: now,
    }
}

#[tokio::test]
async fn only_changed_users_are_rebuilt() {
    let db = test_db!();
    let mut ids = Vec::new();
    for name in ["ada", "bea", "cy"] {
        let user = sql::accounts::add_user(&db, name, "", false).await.unwrap();
        let (machine, _) = sql::accounts::add_machine(&db, name, "m").await.unwrap();
        ids.push((user.user_id, machine.machine_id));
    }
    sql::blocks::insert_unshipped(
        &db,
        &[pulse(ids[0].0, ids[0].1, 10), pulse(ids[1].0, ids[1].1, 20)],
    )
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    let rollups = Rollups::new(db.clone(), builder::Builder::new(&site).unwrap());

    // The first run of a process is full.
    let first = rollups.run(Scope::Incremental).await.unwrap();
    assert!(first.full);
    assert_eq!(first.profiles, 3);

    // New XP for cy, bea goes private: exactly those two are touched.
    rollups.mark_dirty(ids[2].0);
    sql::blocks::insert_unshipped(&db, &[pulse(ids[2].0, ids[2].1, 5)])
        .await
        .unwrap();
    sql::accounts::set_private(&db, "bea", true).await.unwrap();
    let second = rollups.run(Scope::Incremental).await.unwrap();
    assert!(!second.full);
    assert_eq!(second.removed, 1);
    assert!(!site.join(builder::paths::user_dir("bea")).exists());
    assert!(!site.join(builder::paths::api_user_file("bea")).exists());
    let cy: serde_json::Value = serde_json::from_slice(
        &std::fs::read(site.join(builder::paths::api_user_file("cy"))).unwrap(),
    )
    .unwrap();
    assert_eq!(cy["total_xp"], 5);
    // ada's pulse was received within the overlap window, so ada may be
    // looked at again; bea is never rebuilt as a public profile.
    assert!(second.profiles <= 2, "{}", second.profiles);
    let front = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(!front.contains("bea"));

    // Back to public: the page returns.
    sql::accounts::set_private(&db, "bea", false).await.unwrap();
    let third = rollups.run(Scope::Incremental).await.unwrap();
    assert!(third.profiles >= 1);
    assert!(
        site.join(builder::paths::user_dir("bea"))
            .join("index.html")
            .exists()
    );
}

/// A block formed long ago that lands only now (ClickHouse was away for two
/// hours) is still picked up: incremental runs read `received_at` from
/// where the last one stopped up to ingest's insertion watermark, which the
/// block in flight held back. No dirty mark helps here: the process that
/// acknowledged the pulses is not this one.
#[tokio::test]
async fn a_block_that_lands_late_is_seen_by_the_next_incremental_run() {
    use std::sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    };
    let db = test_db!();
    let user = sql::accounts::add_user(&db, "late", "", false)
        .await
        .unwrap();
    let (machine, _) = sql::accounts::add_machine(&db, "late", "m").await.unwrap();
    let now = chrono::Utc::now().timestamp() as u32;
    let formed = now - 2 * 3600;
    // The block in flight since `formed` holds the watermark there.
    let watermark = Arc::new(AtomicU32::new(formed));
    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    let held = watermark.clone();
    let rollups = Rollups::new(db.clone(), builder::Builder::new(&site).unwrap())
        .with_watermark(Arc::new(move || held.load(Ordering::SeqCst)));
    assert!(rollups.run(Scope::Incremental).await.unwrap().full);
    let quiet = rollups.run(Scope::Incremental).await.unwrap();
    assert_eq!(quiet.profiles, 0);

    // It lands, two hours after it was formed; the watermark moves on.
    let mut late = pulse(user.user_id, machine.machine_id, 42);
    late.received_at = formed;
    late.coded_at = formed - 60;
    sql::blocks::insert_unshipped(&db, &[late]).await.unwrap();
    watermark.store(now, Ordering::SeqCst);
    let next = rollups.run(Scope::Incremental).await.unwrap();
    assert!(!next.full);
    assert_eq!(next.profiles, 1);
    let doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(site.join(builder::paths::api_user_file("late"))).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["total_xp"], 42);
}
