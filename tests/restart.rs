//! Restarting `codestats serve` under steady load, as systemd does with
//! socket activation: the test holds the listening socket (as
//! `codestats.socket` would), starts each `serve` with it as fd 3
//! (`LISTEN_FDS=1`, `LISTEN_PID`), and restarts it by SIGTERM, wait, start.
//! Connections that arrive meanwhile wait in the socket's backlog: none is
//! refused, no request fails, and every acknowledged pulse is stored once.

mod common;

use common::{BIN, codestats, ok};
use std::{
    net::TcpListener,
    os::fd::OwnedFd,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Plugins sending at once.
const CLIENTS: usize = 6;
/// Pause between one client's requests.
const PAUSE: Duration = Duration::from_millis(20);
/// Restarts under load.
const RESTARTS: usize = 3;
/// Longest a client waits for an answer: far above a restart.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How `serve` gets its listening socket.
enum Socket {
    /// Passed as systemd passes it: fd 3, `LISTEN_FDS=1`, `LISTEN_PID` its
    /// own pid (set by the shell that execs it). The test holds the socket.
    Passed(TcpListener),
    /// Bound by each `serve` itself (`--listen`): the baseline.
    Bound(String),
}

impl Socket {
    fn base(&self) -> String {
        match self {
            Socket::Passed(listener) => format!("http://{}", listener.local_addr().unwrap()),
            Socket::Bound(addr) => format!("http://{addr}"),
        }
    }

    fn start(&self, env: &[(&'static str, String)], data: &std::path::Path) -> Running {
        let mut command = match self {
            Socket::Passed(listener) => {
                let socket: OwnedFd = listener.try_clone().unwrap().into();
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    r#"exec 3<&0 0</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@""#,
                    BIN,
                    "serve",
                    // Never bound: the passed socket is used.
                    "--listen",
                    "127.0.0.1:1",
                ])
                .stdin(Stdio::from(socket));
                c
            }
            Socket::Bound(addr) => {
                let mut c = Command::new(BIN);
                c.args(["serve", "--listen", addr]).stdin(Stdio::null());
                c
            }
        };
        command
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("CODESTATS_DATA_DIR", data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(|child| Running(Some(child)))
            .expect("start codestats serve")
    }
}

/// A running `serve`, killed if the test ends before stopping it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM, then wait for the process to end (systemd's stop).
fn stop(mut running: Running) {
    let mut child = running.0.take().expect("running");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve ended with {status}");
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    xp: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Slowest answer, in ms.
    slowest_ms: AtomicU64,
}

/// What the clients saw.
struct Outcome {
    answered: u64,
    refused: u64,
    failed: u64,
    errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_load_refuses_nothing_and_fails_nothing() {
    let db = sql::test_db!();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let outcome = restarts_under_load(&db, Socket::Passed(listener)).await;
    assert_eq!(
        (outcome.refused, outcome.failed),
        (0, 0),
        "{:?}",
        outcome.errors
    );
    assert!(
        outcome.answered > 100,
        "too little load: {}",
        outcome.answered
    );
}

/// The baseline: a `serve` that binds its own socket leaves a gap in which
/// connections are refused (so the test above would see one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_passed_socket_a_restart_refuses_connections() {
    let addr = format!("127.0.0.1:{}", sql::testing::free_port());
    let db = sql::test_db!();
    let outcome = restarts_under_load(&db, Socket::Bound(addr)).await;
    assert!(
        outcome.refused > 0,
        "no connection refused without a passed socket"
    );
    assert_eq!(outcome.failed, 0, "{:?}", outcome.errors);
}

/// Starts `serve`, puts it under load, restarts it [`RESTARTS`] times, and
/// checks that every acknowledged pulse is stored once.
async fn restarts_under_load(db: &sql::Db, socket: Socket) -> Outcome {
    let d = db.database();
    ok(codestats(d, &["users", "add", "rita"]).await);
    let token = ok(codestats(d, &["machines", "add", "rita", "laptop"]).await)
        .trim()
        .to_owned();
    let data = tempfile::tempdir().unwrap();
    let mut env = sql::testing::binary_env(d).await;
    // The load is one machine's token: no rate limit in the way.
    env.push(("CODESTATS_RATE_PER_MINUTE", "1000000".to_owned()));
    env.push(("CODESTATS_RATE_BURST", "100000".to_owned()));
    let base = socket.base();
    let mut serve = socket.start(&env, data.path());
    let started = Instant::now();
    while !reqwest::get(format!("{base}/healthz"))
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tally = Arc::new(Tally::default());
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let (tally, running, base, token) =
            (tally.clone(), running.clone(), base.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(CLIENT_TIMEOUT)
                .build()
                .unwrap();
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                i += 1;
                let xp = 1 + (i + n as u64) % 7;
                let sent = Instant::now();
                // Mostly pulses, some reads, as plugins and pages do.
                let (result, want) = if i.is_multiple_of(5) {
                    (client.get(format!("{base}/healthz")).send().await, 200)
                } else {
                    let body = serde_json::json!({
                        "coded_at": chrono::Utc::now().to_rfc3339(),
                        "xps": [{"language": "Rust", "xp": xp}],
                    });
                    let request = client
                        .post(format!("{base}/api/my/pulses"))
                        .header("x-api-token", &token)
                        .json(&body);
                    (request.send().await, 201)
                };
                let took = sent.elapsed().as_millis() as u64;
                tally.slowest_ms.fetch_max(took, Ordering::Relaxed);
                match result {
                    Ok(r) if r.status().as_u16() == want => {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                        if want == 201 {
                            tally.xp.fetch_add(xp, Ordering::Relaxed);
                        }
                    }
                    Ok(r) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        tally
                            .errors
                            .lock()
                            .unwrap()
                            .push(format!("{status}: {body}"));
                    }
                    Err(e) => {
                        if e.is_connect() {
                            tally.refused.fetch_add(1, Ordering::Relaxed);
                        } else {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        tally.errors.lock().unwrap().push(format!("{e:?}"));
                    }
                }
                tokio::time::sleep(PAUSE).await;
            }
        }));
    }

    let mut gaps = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..RESTARTS {
        let before = tally.ok.load(Ordering::Relaxed);
        let down = Instant::now();
        tokio::task::spawn_blocking(move || stop(serve))
            .await
            .unwrap();
        serve = socket.start(&env, data.path());
        // Until the new process answers the first request.
        while tally.ok.load(Ordering::Relaxed) == before {
            assert!(
                down.elapsed() < Duration::from_secs(60),
                "no answer after a restart"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gaps.push(down.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    running.store(false, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let (answered, refused, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    let mode = match socket {
        Socket::Passed(_) => "passed socket",
        Socket::Bound(_) => "bound socket",
    };
    eprintln!(
        "restart under load ({mode}): {answered} requests answered, {refused} refused, {failed} failed; \
         {RESTARTS} restarts, first answer after {gaps:?}; slowest answer {} ms",
        tally.slowest_ms.load(Ordering::Relaxed)
    );
    let errors: Vec<String> = tally
        .errors
        .lock()
        .unwrap()
        .iter()
        .take(10)
        .cloned()
        .collect();

    // Every acknowledged pulse is stored, once.
    let want = tally.xp.load(Ordering::Relaxed);
    let started = Instant::now();
    loop {
        let stored: u64 = db
            .client()
            .query("SELECT sum(xp) FROM pulses")
            .fetch_one()
            .await
            .unwrap();
        if stored == want {
            break;
        }
        assert!(stored < want, "{stored} XP stored, {want} acknowledged");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{stored} of {want} XP stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::task::spawn_blocking(move || stop(serve))
        .await
        .unwrap();
    Outcome {
        answered,
        refused,
        failed,
        errors,
    }
}
