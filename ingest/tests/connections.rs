//! The server's connection limits, tried with raw sockets as an attacker
//! would: stalled heads, idle keep-alive, trickled bodies, a declared
//! length over the limit, more connections than the cap. The limits are
//! lowered so the test runs in seconds; the defaults are the same code.

mod common;

use common::{TestApp, timestamp};
use ingest::server::ServerLimits;
use serde_json::json;
use sql::test_db;
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const HEADER: Duration = Duration::from_millis(800);
const IDLE: Duration = Duration::from_millis(1500);
const STALL: Duration = Duration::from_millis(1500);
const GRACE: Duration = Duration::from_secs(1);

fn limits(max_connections: usize) -> ServerLimits {
    ServerLimits {
        max_connections,
        header_read_timeout: HEADER,
        idle_timeout: IDLE,
        write_stall_timeout: STALL,
        shutdown_grace: GRACE,
        drain_idle: ingest::server::DRAIN_IDLE,
    }
}

async fn app(db: sql::Db, max_connections: usize) -> TestApp {
    TestApp::with_limits(
        db,
        |c| {
            c.rate_per_minute = 1_000_000;
            c.rate_burst = 10_000;
            c.body_read_timeout = Duration::from_secs(1);
        },
        limits(max_connections),
    )
    .await
}

/// Reads until the server closes the connection or `within` passes;
/// returns what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    loop {
        let mut buf = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// One `GET /healthz` on an open keep-alive connection, answered 200.
async fn assert_healthy(s: &mut TcpStream) {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

fn json_body(response: &str) -> serde_json::Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {response:?}"))
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_from_the_header() {
    let app = app(test_db!(), 64).await;
    let token = app.machine("alice", "m", false).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/my/pulses HTTP/1.1\r\nHost: x\r\nX-API-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n{{}}"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (response, _) = read_until_closed(&mut s, Duration::from_secs(3)).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response:?}");
    assert_eq!(
        json_body(&response)["error"],
        "request body is larger than 65536 bytes"
    );
}

#[tokio::test]
async fn stalled_heads_and_idle_connections_are_closed() {
    let app = app(test_db!(), 64).await;
    // Nothing sent at all: closed as idle.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    // Half a request line, then nothing: closed by the header timeout.
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HT").await.unwrap();
    // Headers trickled a byte at a time never finish: the header timeout
    // counts from the first byte, not from the last.
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    let trickler = tokio::spawn(async move {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut buf = [0u8; 16];
        matches!(trickle.read(&mut buf).await, Ok(0) | Err(_))
    });
    // One request answered, then idle keep-alive: closed after the idle timeout.
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    let (_, half_closed) = read_until_closed(&mut half, HEADER * 4).await;
    assert!(half_closed, "a stalled head stays open");
    assert!(
        started.elapsed() < IDLE,
        "closed by the idle, not the header timeout"
    );
    let (answer, kept_closed) = read_until_closed(&mut kept, IDLE * 3).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(kept_closed, "an idle keep-alive connection stays open");
    let (_, silent_closed) = read_until_closed(&mut silent, IDLE * 3).await;
    assert!(silent_closed, "a silent connection stays open");
    assert!(trickler.await.unwrap(), "a trickled head stays open");
    assert!(
        app.server
            .stats
            .timed_out
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn a_trickled_body_gets_408_and_stores_nothing() {
    let app = app(test_db!(), 64).await;
    let token = app.machine("alice", "m", false).await;
    let body =
        json!({"coded_at": timestamp(10, 0), "xps": [{"language": "Rust", "xp": 5}]}).to_string();
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/my/pulses HTTP/1.1\r\nHost: x\r\nX-API-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Half the body, slowly, then silence.
    for b in &body.as_bytes()[..body.len() / 2] {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (response, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response:?}");
    assert_eq!(
        json_body(&response)["error"],
        "request body not received in time"
    );
    assert!(closed);
    assert_eq!(app.stored().await, (0, 0));
}

#[tokio::test]
async fn at_the_cap_new_connections_are_refused_and_open_ones_keep_working() {
    let app = app(test_db!(), 4).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        assert_healthy(&mut s).await;
        open.push(s);
    }
    // The fifth is told why and closed at once.
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    let (response, closed) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(closed, "a connection over the cap stays open");
    assert!(response.starts_with("HTTP/1.1 503"), "{response:?}");
    assert_eq!(
        json_body(&response)["error"],
        "too many connections, try again later"
    );
    // The open connections are served as before.
    for s in &mut open {
        assert_healthy(s).await;
    }
    // A slot freed is a slot given again.
    drop(open.pop());
    let started = Instant::now();
    loop {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (r, _) = read_until_closed(&mut s, Duration::from_millis(500)).await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{r:?}");
    }
    assert!(
        app.server
            .stats
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn live_streams_outlast_the_idle_timeout_and_have_their_own_cap() {
    let app = TestApp::with_limits(test_db!(), |c| c.max_live_streams = 2, limits(64)).await;
    let token = app.machine("alice", "m", false).await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        streams.push(s);
    }
    let r = app.get("/live").await;
    assert_eq!(r.status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["error"], "too many live streams, try again later");
    // Quiet for longer than the idle timeout: still open, still delivering.
    tokio::time::sleep(IDLE * 2).await;
    let r = app
        .post(
            &token,
            json!({"coded_at": timestamp(10, 0), "xps": [{"language": "Rust", "xp": 5}]}),
        )
        .await;
    assert_eq!(r.status, reqwest::StatusCode::CREATED);
    for s in &mut streams {
        let (text, closed) = read_until_closed(s, Duration::from_secs(1)).await;
        assert!(!closed, "a live stream was closed as idle");
        assert!(text.contains("\"user\":\"alice\""), "{text:?}");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed() {
    // 16 MiB pages asked for 8 times over one connection, none read: the
    // socket fills, writes stall, the connection is closed.
    let site = tempfile::tempdir().unwrap();
    let page = vec![b'x'; 16 << 20];
    std::fs::write(site.path().join("big.txt"), &page).unwrap();
    let app = TestApp::build(test_db!(), |_| {}, limits(64), Some(site.path())).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let requests = "GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(8);
    s.write_all(requests.as_bytes()).await.unwrap();
    tokio::time::sleep(STALL * 3).await;
    // Now read what was sent before the close: far less than asked, then EOF.
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("the stalled connection was not closed ({total} bytes read)"),
        }
    }
    assert!(
        total < 8 * page.len(),
        "{total} bytes: every response was sent"
    );
    assert!(
        app.server
            .stats
            .timed_out
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn stopping_closes_what_is_still_open_after_the_grace_period() {
    let app = TestApp::with_limits(test_db!(), |_| {}, limits(64)).await;
    // A live stream never ends by itself (the feed is not closed here).
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(s.read(&mut buf).await.unwrap() > 0);
    let TestApp { server, .. } = app;
    let stopped = tokio::time::timeout(GRACE + Duration::from_secs(5), server.stop()).await;
    assert!(
        stopped.is_ok(),
        "stop waited on an open stream past the grace period"
    );
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(2)).await;
    assert!(closed, "the stream outlived the server");
}
