//! Coding time from heartbeats reaches profiles, language pages and the
//! coding-time JSON, incrementally, and never a private user's.

use jobs::{Rollups, Scope};
use sql::{heartbeats::HeartbeatRow, pulses::PulseRow, test_db};

fn beat(user_id: u64, time: u32, language: &str, editor: &str, received_at: u32) -> HeartbeatRow {
    let mut row = HeartbeatRow {
        heartbeat_id: 0,
        batch_id: 1,
        user_id,
        machine_id: 1,
        time,
        time_ms: 0,
        utc_offset: 0,
        entity_hash: sql::heartbeats::entity_hash(user_id, "/src/x"),
        entity: String::new(),
        kind: "file".into(),
        category: "coding".into(),
        project: "secret-project".into(),
        branch: "main".into(),
        language: language.into(),
        is_write: 0,
        lines: 1,
        line_additions: 0,
        line_deletions: 0,
        lineno: 0,
        cursorpos: 0,
        editor: editor.into(),
        os: "Linux".into(),
        machine: "laptop".into(),
        received_at,
    };
    row.heartbeat_id = sql::heartbeats::heartbeat_id(&row);
    row
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn coding_time_on_profiles_language_pages_and_json() {
    let db = test_db!();
    let now = chrono::Utc::now().timestamp() as u32;
    let start = now - now % 86_400 - 86_400 + 3600; // yesterday 01:00 UTC
    let ada = sql::accounts::add_user(&db, "ada", "", false)
        .await
        .unwrap();
    let eve = sql::accounts::add_user(&db, "eve", "", true).await.unwrap();
    let (machine, _) = sql::accounts::add_machine(&db, "ada", "m").await.unwrap();
    // XP in Rust, so Rust has a language page.
    sql::blocks::insert_unshipped(
        &db,
        &[PulseRow {
            pulse_id: 1,
            batch_id: 1,
            user_id: ada.user_id,
            machine_id: machine.machine_id,
            coded_at: start,
            utc_offset: 0,
            language: "Rust".into(),
            xp: 100,
            received_at: now,
        }],
    )
    .await
    .unwrap();
    // ada: 5 min of Rust in Vim (and a copy, which adds nothing), then a
    // gap past the timeout, then 1 min of Go in Emacs. eve (private): an
    // hour of Rust that must show nowhere.
    let mut beats = vec![
        beat(ada.user_id, start, "Rust", "Vim", now),
        beat(ada.user_id, start + 300, "Rust", "Vim", now),
        beat(ada.user_id, start + 300, "Rust", "Vim", now),
        beat(ada.user_id, start + 300 + 3600, "Go", "Emacs", now),
        beat(ada.user_id, start + 360 + 3600, "Go", "Emacs", now),
    ];
    for i in 0..=60 {
        beats.push(beat(eve.user_id, start + i * 60, "Rust", "Vim", now));
    }
    sql::heartbeats::insert(&db, rand::random(), &beats)
        .await
        .unwrap();

    let out = tempfile::tempdir().unwrap();
    let site = out.path().join("site");
    let rollups = Rollups::new(db.clone(), builder::Builder::new(&site).unwrap());
    rollups.run(Scope::Full).await.unwrap();

    let coding = read_json(&site.join(builder::paths::api_coding_file("ada")));
    assert_eq!(coding["total_seconds"], 360);
    assert_eq!(coding["languages"]["Rust"], 300);
    assert_eq!(coding["languages"]["Go"], 60);
    assert_eq!(coding["editors"]["Emacs"], 60);
    let day = chrono::DateTime::from_timestamp(i64::from(start), 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(coding["dates"][&day], 360);
    let page = std::fs::read_to_string(site.join("users/ada/index.html")).unwrap();
    assert!(
        page.contains("Time coded <span class=\"xp\">6 min</span>"),
        "{page}"
    );
    // The Code::Stats document keeps exactly its keys.
    let xp = read_json(&site.join(builder::paths::api_user_file("ada")));
    let keys: Vec<&String> = xp.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "dates",
            "languages",
            "machines",
            "new_xp",
            "total_xp",
            "user"
        ]
    );
    // Only public time on the language page: ada's 5 minutes, not eve's hour.
    let rust = std::fs::read_to_string(site.join("languages/Rust/index.html")).unwrap();
    assert!(rust.contains("<strong>5 min</strong> coded"), "{rust}");
    // Projects, branches and machine labels are never published.
    for file in walk(&site) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(!text.contains("secret-project"), "{}", file.display());
        assert!(!text.contains("laptop"), "{}", file.display());
    }
    assert!(!site.join(builder::paths::api_coding_file("eve")).exists());

    // New heartbeats, received later: an incremental run picks them up.
    let later = now + 5;
    sql::heartbeats::insert(
        &db,
        rand::random(),
        &[
            beat(ada.user_id, start + 7200, "Rust", "Vim", later),
            beat(ada.user_id, start + 7320, "Rust", "Vim", later),
        ],
    )
    .await
    .unwrap();
    rollups.mark_dirty(ada.user_id);
    let run = rollups.run(Scope::Incremental).await.unwrap();
    assert!(!run.full);
    let coding = read_json(&site.join(builder::paths::api_coding_file("ada")));
    assert_eq!(coding["languages"]["Rust"], 420);
    let rust = std::fs::read_to_string(site.join("languages/Rust/index.html")).unwrap();
    assert!(rust.contains("<strong>7 min</strong> coded"), "{rust}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
