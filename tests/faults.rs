//! The worst case for durability: ClickHouse dies, the server is killed with
//! SIGKILL while its acknowledged pulses sit in the spool, then both come
//! back. Every acknowledged pulse must end up in ClickHouse exactly once.

use serde_json::json;
use sql::{
    Db,
    local_server::{LocalServer, LocalServerConfig},
};
use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_codestats");

fn start_serve(ch: &LocalServerConfig, data_dir: &std::path::Path, listen: u16) -> Child {
    let writer = ch.clickhouse_config(sql::config::DEFAULT_DATABASE).unwrap();
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{listen}")])
        .env("CODESTATS_CLICKHOUSE_URL", ch.url())
        .env("CODESTATS_CLICKHOUSE_USER", &writer.user)
        .env("CODESTATS_CLICKHOUSE_PASSWORD", writer.password.expose())
        .env("CODESTATS_DATA_DIR", data_dir)
        .env("CODESTATS_RATE_PER_MINUTE", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(listen: u16) {
    let started = Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{listen}/healthz"))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spool_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("spool"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_with_a_full_spool_loses_and_doubles_nothing() {
    let ch_dir = tempfile::tempdir().unwrap();
    let mut ch_config = LocalServerConfig::for_data_dir(ch_dir.path());
    ch_config.http_port = sql::testing::free_port();
    ch_config.tcp_port = sql::testing::free_port();
    let ch = LocalServer::start(ch_config.clone()).await.unwrap();
    let db = Db::new(
        &ch_config.url(),
        &ch_config
            .clickhouse_config(sql::config::DEFAULT_DATABASE)
            .unwrap(),
    )
    .unwrap();
    sql::migrate::migrate(&db).await.unwrap();
    sql::accounts::add_user(&db, "crash", "", false)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(
            sql::accounts::add_machine(&db, "crash", &format!("m{i}"))
                .await
                .unwrap()
                .1,
        );
    }

    let data = tempfile::tempdir().unwrap();
    let listen = sql::testing::free_port();
    let mut serve = start_serve(&ch_config, data.path(), listen);
    wait_healthy(listen).await;

    // Clients send unique (machine, coded_at) pulses and remember what got 201.
    let acked = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let base = chrono::Utc::now().timestamp() - 3 * 86400;
    let url = format!("http://127.0.0.1:{listen}/api/my/pulses");
    let senders: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let (url, stop, acked) = (url.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let coded_at = base + n;
                    let xp = (n % 40 + 1) as u64;
                    let body = json!({"coded_at": chrono::DateTime::from_timestamp(coded_at, 0).unwrap().to_rfc3339(),
                                      "xps": [{"language": "Rust", "xp": xp}]});
                    let sent = http.post(&url).header("X-API-Token", &token).body(body.to_string()).send().await;
                    if sent.is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED) {
                        acked.lock().unwrap().insert((format!("m{i}"), coded_at as u32), xp);
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(700)).await;
    ch.kill().await;
    let before_outage = acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        acked.lock().unwrap().len() > before_outage,
        "no pulses acknowledged during the outage"
    );
    serve.kill().unwrap(); // SIGKILL
    serve.wait().unwrap();
    let spooled = spool_files(data.path());
    assert!(spooled > 0, "nothing was spooled");

    let ch = LocalServer::start(ch_config.clone()).await.unwrap();
    let mut serve = start_serve(&ch_config, data.path(), listen);
    wait_healthy(listen).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let started = Instant::now();
    while spool_files(data.path()) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "spool not drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(serve.wait().unwrap().success());

    let acked = acked.lock().unwrap().clone();
    let stored = sql::testing::assert_exactly_once(&db, &acked).await;
    eprintln!(
        "acknowledged {}, spooled files at kill {spooled}, stored {}",
        acked.len(),
        stored
    );
    ch.kill().await;
}
