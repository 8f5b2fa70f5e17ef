//! The built site in headless Chromium, served by `codestats serve`: the
//! front page, a profile and the languages page load with no console
//! message and no failed request, and screenshots are left in
//! `target/tmp/screenshots/` for a person to look at.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

mod common;

use common::{CHROMIUM, CHROMIUM_FLAGS, Serve};

/// Local URLs a page refers to (`src="/…"`, `href="/…"`).
fn local_refs(html: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                let url = rest[..end].replace("&amp;", "&");
                if url.starts_with('/') && !url.starts_with("//") {
                    refs.push(url);
                }
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// Opens `url` in headless Chromium, saves a screenshot, returns the
/// console lines it logged.
fn chromium(url: &str, screenshot: &Path) -> Vec<String> {
    common::assert_chromium();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args(CHROMIUM_FLAGS)
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1600",
            // No --virtual-time-budget: pages keep a live-updates stream
            // open, which holds virtual time still; the shot is taken at load.
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_chromium_without_errors() {
    let db = sql::test_db!();
    jobs::seed::seed(
        &db,
        &jobs::seed::SeedOptions {
            users: 12,
            days: 60,
            seed: 3,
            prefix: "web".into(),
            private_share: 0.0,
        },
    )
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        db.database(),
        data.path(),
        &[("CODESTATS_ROLLUP_INTERVAL_SECS", "3600")],
    )
    .await;
    serve.wait_for("/users/web0/", |_| true).await;
    let base = serve.base.clone();
    let http = reqwest::Client::new();

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, path) in [
        ("front", "/"),
        ("profile", "/users/web0/"),
        ("languages", "/languages/"),
    ] {
        let html = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(html.status(), 200, "{path}");
        let html = html.text().await.unwrap();
        for url in local_refs(&html) {
            let r = http.get(format!("{base}{url}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path} refers to {url}");
        }
        let shot = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        let console = chromium(&format!("{base}{path}"), &shot);
        assert!(
            console.is_empty(),
            "{path} logged to the console: {console:#?}"
        );
        assert!(
            std::fs::metadata(&shot)
                .map(|m| m.len() > 10_000)
                .unwrap_or(false),
            "no screenshot of {path}"
        );
    }
}
