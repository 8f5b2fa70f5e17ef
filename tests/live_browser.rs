//! Live updates in a real browser: a profile page served by `codestats
//! serve` is open in headless Chromium while pulses arrive; the total on the
//! page grows without a reload, with no console message and no failed
//! request. A screenshot is left in `target/tmp/screenshots/live-profile.png`.

use serde_json::{Value, json};
use std::{
    io::{Read, Write},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod common;

use common::{CHROMIUM, CHROMIUM_FLAGS, Serve};

/// A minimal Chrome DevTools Protocol client over one WebSocket (text
/// frames, unfragmented, as Chromium sends them).
struct Cdp {
    ws: std::net::TcpStream,
    next_id: u64,
    /// Console messages, exceptions, log errors and failed requests seen.
    problems: Vec<String>,
}

impl Cdp {
    fn connect(ws_url: &str) -> Self {
        let rest = ws_url.strip_prefix("ws://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        let mut ws = std::net::TcpStream::connect(host).unwrap();
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "no websocket upgrade");
        ws.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self {
            ws,
            next_id: 0,
            problems: Vec::new(),
        }
    }

    fn send_frame(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.ws.write_all(&frame).unwrap();
    }

    fn read_message(&mut self) -> Value {
        let mut head = [0u8; 2];
        self.ws.read_exact(&mut head).unwrap();
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.ws.read_exact(&mut b).unwrap();
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.ws.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; len as usize];
        self.ws.read_exact(&mut payload).unwrap();
        serde_json::from_slice(&payload).unwrap_or(Value::Null)
    }

    /// Sends a command and returns its result, noting the events that
    /// arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_frame(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let message = self.read_message();
            if message["id"] == id {
                assert!(message["error"].is_null(), "{method}: {message}");
                return message["result"].clone();
            }
            self.note(&message);
        }
    }

    fn note(&mut self, event: &Value) {
        let p = &event["params"];
        let problem = match event["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" => Some(format!("console.{}: {}", p["type"], p["args"])),
            "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
            "Log.entryAdded" => Some(format!(
                "log {}: {}",
                p["entry"]["level"], p["entry"]["text"]
            )),
            "Network.loadingFailed" if p["canceled"] != true => {
                Some(format!("request failed: {}", p["errorText"]))
            }
            "Network.responseReceived" if p["response"]["status"].as_u64() >= Some(400) => {
                Some(format!(
                    "{} answered {}",
                    p["response"]["url"], p["response"]["status"]
                ))
            }
            _ => None,
        };
        self.problems.extend(problem);
    }

    fn eval(&mut self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }
}

/// Headless Chromium with its DevTools on a free port; killed on drop.
struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromium {
    fn start() -> Self {
        common::assert_chromium();
        let profile = tempfile::tempdir().unwrap();
        let port = sql::testing::free_port();
        let child = Command::new(CHROMIUM)
            .args(CHROMIUM_FLAGS)
            .arg("--window-size=1200,1400")
            .arg(format!("--remote-debugging-port={port}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            _profile: profile,
            port,
        }
    }

    /// The DevTools WebSocket of its first page.
    async fn page_ws(&self) -> String {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/json/list", self.port);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && let Ok(Value::Array(targets)) = r.json::<Value>().await
                && let Some(ws) = targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            {
                return ws.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromium's devtools did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

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

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
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
            let png = cdp.call("Page.captureScreenshot", json!({"format": "png"}));
            use base64::Engine as _;
            let png = base64::engine::general_purpose::STANDARD
                .decode(png["data"].as_str().unwrap())
                .unwrap();
            std::fs::write(&shot, png).unwrap();

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
            let png = cdp.call("Page.captureScreenshot", json!({"format": "png"}));
            let png = base64::engine::general_purpose::STANDARD
                .decode(png["data"].as_str().unwrap())
                .unwrap();
            std::fs::write(&front_shot, png).unwrap();
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
