//! Live updates in a real browser: a profile page served by `codestats
//! serve` is open in headless Chromium while pulses arrive; the total on the
//! page grows without a reload, with no console message and no failed
//! request. A screenshot is left in `target/tmp/screenshots/live-profile.png`.

use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod common;

use common::{
    Serve,
    cdp::{Cdp, Chromium, screenshot_dir},
};

/// The number in `data-xp="…"` of the element marked `data-live-total`.
fn page_total(html: &str) -> u64 {
    let at = html.find("data-live-total ").expect("no total on the page");
    let rest = &html[at..];
    let value = &rest[rest.find("data-xp=\"").unwrap() + 9..];
    value[..value.find('"').unwrap()].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_page_updates_live_in_chromium() {
    let db = sql::test_db!();
    jobs::seed::seed(
        &db,
        &jobs::seed::SeedOptions {
            users: 2,
            days: 30,
            seed: 7,
            prefix: "live".into(),
            private_share: 0.0,
        },
    )
    .await
    .unwrap();
    let (_, token) = sql::accounts::add_machine(&db, "live0", "browser")
        .await
        .unwrap();

    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        db.database(),
        data.path(),
        &[
            // no rebuild while the page is open: only live updates change it
            ("CODESTATS_ROLLUP_INTERVAL_SECS", "3600"),
            ("CODESTATS_RATE_PER_MINUTE", "100000"),
        ],
    )
    .await;
    let base = serve.base.clone();
    let page = serve.url("/users/live0/");
    let http = reqwest::Client::new();
    let html = serve.wait_for("/users/live0/", |_| true).await;
    let built_total = page_total(&html);
    assert!(
        html.contains("/static/live.js?v="),
        "the page loads live.js"
    );

    // Pulses keep arriving while Chromium has the page open; the page
    // cannot know when, so it must pick them up from the stream.
    let stop = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicU64::new(0));
    let poster = tokio::spawn({
        let (stop, posted, http) = (stop.clone(), posted.clone(), http.clone());
        let url = format!("{base}/api/my/pulses");
        async move {
            while !stop.load(Ordering::Relaxed) {
                let body = json!({
                    "coded_at": chrono::Utc::now().to_rfc3339(),
                    "xps": [{"language": "Rust", "xp": 25}, {"language": "Brand New Language", "xp": 5}],
                });
                let r = http
                    .post(&url)
                    .header("x-api-token", &token)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                posted.fetch_add(30, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });

    let shots = screenshot_dir();
    let shot = shots.join("live-profile.png");
    let _ = std::fs::remove_file(&shot);
    let front_shot = shots.join("live-front.png");
    let _ = std::fs::remove_file(&front_shot);
    let (live_total, shown, has_new_language, front, problems) = {
        let (page, shot, front_shot) = (page.clone(), shot.clone(), front_shot.clone());
        let front_page = format!("{base}/");
        let chromium = Chromium::start();
        let ws = chromium.page_ws().await;
        tokio::task::spawn_blocking(move || {
            let _chromium = chromium;
            let mut cdp = Cdp::connect(&ws);
            for domain in ["Runtime", "Log", "Network", "Page"] {
                cdp.call(&format!("{domain}.enable"), json!({}));
            }
            cdp.call("Page.navigate", json!({"url": page}));
            // the total grows without a reload: same document, larger number
            let started = Instant::now();
            cdp.eval("window.__opened = true");
            let total = loop {
                let xp = cdp.eval(
                    "(function(){var t=document.querySelector('[data-live-total]');\
                     return t ? parseInt(t.getAttribute('data-xp'), 10) : 0;})()",
                );
                let xp = xp.as_u64().unwrap_or(0);
                if xp > built_total && started.elapsed() > Duration::from_secs(2) {
                    break xp;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the total stayed at {xp} XP (built: {built_total})"
                );
                std::thread::sleep(Duration::from_millis(200));
            };
            let shown = cdp.eval("document.querySelector('[data-live-xp]').textContent");
            let has_new =
                cdp.eval("!!document.querySelector('[data-language=\"Brand New Language\"]')");
            let reloaded = cdp.eval("window.__opened !== true");
            assert_eq!(reloaded, json!(false), "the page was reloaded");
            cdp.screenshot(&shot);

            // The front page: its live section appears and fills with the
            // pulses that keep arriving.
            cdp.call("Page.navigate", json!({"url": front_page}));
            let started = Instant::now();
            let front = loop {
                let state = cdp.eval(
                    "(function(){var s=document.querySelector('[data-live-front]');\
                     var items=document.querySelectorAll('[data-live-activity] li');\
                     var xpm=document.querySelector('[data-live-xpm]');\
                     return {shown: !!s && !s.hidden, items: items.length,\
                             first: items.length ? items[0].textContent : '',\
                             xpm: xpm ? parseInt(xpm.textContent.replace(/[^0-9]/g, ''), 10) : 0};})()",
                );
                if state["items"].as_u64().unwrap_or(0) > 0
                    && state["xpm"].as_u64().unwrap_or(0) > 0
                {
                    break state;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the front page's live section stayed {state}"
                );
                std::thread::sleep(Duration::from_millis(200));
            };
            cdp.screenshot(&front_shot);
            (total, shown, has_new, front, cdp.problems.clone())
        })
        .await
        .unwrap()
    };
    stop.store(true, Ordering::Relaxed);
    poster.await.unwrap();

    assert!(
        problems.is_empty(),
        "console messages or failed requests: {problems:#?}"
    );
    assert_eq!(
        (live_total - built_total) % 30,
        0,
        "whole pulses of 30 XP: {built_total} → {live_total}"
    );
    assert!(live_total - built_total <= posted.load(Ordering::Relaxed));
    // the shown number follows, and the new language has a row
    assert_eq!(
        shown,
        json!(format!("{} XP", builder::thousands(live_total)))
    );
    assert_eq!(has_new_language, json!(true));
    // the front page's live section shows, lists the poster, counts XP
    assert_eq!(front["shown"], json!(true), "{front}");
    assert!(
        front["first"].as_str().unwrap_or("").contains("live0"),
        "{front}"
    );
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot"
    );
}
