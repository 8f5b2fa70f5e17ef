//! The built site in headless Chromium, served by `codestats serve`: the
//! front page, a profile and the languages page load with no console
//! message and no failed request, and screenshots are left in
//! `target/tmp/screenshots/` for a person to look at.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_codestats");
const CHROMIUM: &str = "/usr/bin/chromium";

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    assert!(
        Path::new(CHROMIUM).exists(),
        "chromium missing: scripts/install-deps chromium"
    );
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
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
    let port = sql::testing::free_port();
    let _serve = Serve(
        Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("CODESTATS_CLICKHOUSE_URL", sql::testing::server_url().await)
            .env("CODESTATS_CLICKHOUSE_DATABASE", db.database())
            .env("CODESTATS_DATA_DIR", data.path())
            .env("CODESTATS_ROLLUP_INTERVAL_SECS", "3600")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let ready = http.get(format!("{base}/users/web0/")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "site not built within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

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
