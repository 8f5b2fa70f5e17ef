//! A minimal Chrome DevTools Protocol client for the browser tests: headless
//! Chromium started on a free port, and one page driven over a hand-written
//! WebSocket. Every console message, exception, log error and failed or
//! refused (4xx/5xx) request is noted as a problem unless a test said it
//! expects that answer.

use super::{CHROMIUM, CHROMIUM_FLAGS};
use serde_json::{Value, json};
use std::{
    io::{Read, Write},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a page may take to load after a navigation or a click.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A minimal Chrome DevTools Protocol client over one WebSocket (text
/// frames, unfragmented, as Chromium sends them).
pub struct Cdp {
    ws: std::net::TcpStream,
    next_id: u64,
    /// Console messages, exceptions, log errors and failed requests seen.
    pub problems: Vec<String>,
    /// `Page.loadEventFired` events seen so far.
    loads: u64,
    /// The URL and HTTP status of the last document received.
    document: Option<(String, u64)>,
    /// Answers a test expects (URL, status): not problems.
    expected: Vec<(String, u64)>,
}

impl Cdp {
    pub fn connect(ws_url: &str) -> Self {
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
            loads: 0,
            document: None,
            expected: Vec::new(),
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
        self.read_rest(head)
    }

    /// The next message if one starts within `wait`.
    fn read_message_within(&mut self, wait: Duration) -> Option<Value> {
        self.ws.set_read_timeout(Some(wait)).unwrap();
        let mut head = [0u8; 1];
        let started = self.ws.read(&mut head);
        self.ws
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        match started {
            Ok(1) => {
                let mut second = [0u8; 1];
                self.ws.read_exact(&mut second).unwrap();
                Some(self.read_rest([head[0], second[0]]))
            }
            Ok(_) => panic!("chromium closed the devtools connection"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("devtools connection: {e}"),
        }
    }

    /// The rest of a frame whose first two bytes are `head`.
    fn read_rest(&mut self, head: [u8; 2]) -> Value {
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
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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

    fn is_expected(&self, url: &str, status: Option<u64>) -> bool {
        self.expected
            .iter()
            .any(|(u, s)| u == url && status.is_none_or(|status| status == *s))
    }

    fn note(&mut self, event: &Value) {
        let p = &event["params"];
        match event["method"].as_str().unwrap_or("") {
            "Page.loadEventFired" => self.loads += 1,
            "Network.responseReceived" if p["type"] == "Document" => {
                self.document = Some((
                    p["response"]["url"].as_str().unwrap_or("").to_owned(),
                    p["response"]["status"].as_u64().unwrap_or(0),
                ));
            }
            _ => {}
        }
        let problem = match event["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled" => Some(format!("console.{}: {}", p["type"], p["args"])),
            "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
            // Chromium logs every 4xx answer as "Failed to load resource"
            "Log.entryAdded"
                if p["entry"]["source"] == "network"
                    && self.is_expected(p["entry"]["url"].as_str().unwrap_or(""), None) =>
            {
                None
            }
            "Log.entryAdded" => Some(format!(
                "log {}: {}",
                p["entry"]["level"], p["entry"]["text"]
            )),
            "Network.loadingFailed" if p["canceled"] != true => {
                Some(format!("request failed: {}", p["errorText"]))
            }
            "Network.responseReceived"
                if p["response"]["status"].as_u64() >= Some(400)
                    && !self.is_expected(
                        p["response"]["url"].as_str().unwrap_or(""),
                        p["response"]["status"].as_u64(),
                    ) =>
            {
                Some(format!(
                    "{} answered {}",
                    p["response"]["url"], p["response"]["status"]
                ))
            }
            _ => None,
        };
        self.problems.extend(problem);
    }

    pub fn eval(&mut self, expression: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }

    /// Evaluates `expression`, waits for the promise it returns, and
    /// returns its value; a rejected promise fails the test.
    pub fn eval_async(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Runs `f` with `status` from `url` (a full URL) taken as the expected
    /// answer, not a problem.
    pub fn expecting<T>(&mut self, url: &str, status: u64, f: impl FnOnce(&mut Self) -> T) -> T {
        self.expected.push((url.to_owned(), status));
        let result = f(self);
        self.expected.pop();
        result
    }

    /// Waits until the page loaded after `loads` load events, then returns
    /// the URL and HTTP status of the document it shows.
    fn wait_for_load(&mut self, loads: u64, what: &str) -> (String, u64) {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        while self.loads <= loads {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = (!left.is_zero())
                .then(|| self.read_message_within(left))
                .flatten()
                .unwrap_or_else(|| panic!("{what}: no page loaded within {LOAD_TIMEOUT:?}"));
            self.note(&message);
        }
        self.document
            .clone()
            .unwrap_or_else(|| panic!("{what}: no document received"))
    }

    /// Opens `url` and waits for its load event; returns the document's
    /// URL (after redirects) and HTTP status.
    pub fn navigate(&mut self, url: &str) -> (String, u64) {
        let loads = self.loads;
        self.document = None;
        let result = self.call("Page.navigate", json!({"url": url}));
        assert!(result["errorText"].is_null(), "{url}: {result}");
        self.wait_for_load(loads, url)
    }

    /// Reloads the page (asking the server again, not the cache) and waits
    /// for its load event; returns the document's URL and HTTP status.
    pub fn reload(&mut self) -> (String, u64) {
        let loads = self.loads;
        self.document = None;
        self.call("Page.reload", json!({"ignoreCache": true}));
        self.wait_for_load(loads, "reload")
    }

    /// Sets the value of the input matched by `selector`, as typing would.
    pub fn set_value(&mut self, selector: &str, value: &str) {
        let found = self.eval(&format!(
            "(function(){{var e=document.querySelector({s});if(!e)return false;\
             e.focus();e.value={v};\
             e.dispatchEvent(new Event('input',{{bubbles:true}}));\
             e.dispatchEvent(new Event('change',{{bubbles:true}}));return true;}})()",
            s = json!(selector),
            v = json!(value),
        ));
        assert_eq!(found, json!(true), "no {selector} on the page");
    }

    /// Clicks the element matched by `selector` (a submit button, a link)
    /// and waits for the page it leads to; returns that document's URL
    /// (after redirects) and HTTP status.
    pub fn click_and_wait(&mut self, selector: &str) -> (String, u64) {
        let loads = self.loads;
        self.document = None;
        let found = self.eval(&format!(
            "(function(){{var e=document.querySelector({s});if(!e)return false;\
             e.click();return true;}})()",
            s = json!(selector),
        ));
        assert_eq!(found, json!(true), "no {selector} on the page");
        self.wait_for_load(loads, selector)
    }

    /// Saves a PNG of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let png = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(png["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// Headless Chromium with its DevTools on a free port; killed on drop.
pub struct Chromium {
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
    pub fn start() -> Self {
        super::assert_chromium();
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
    pub async fn page_ws(&self) -> String {
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

/// Where the browser tests leave their screenshots:
/// `target/tmp/screenshots/`.
pub fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
