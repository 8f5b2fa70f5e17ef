//! `GET /metrics` of a running `codestats serve`: scraped before and after
//! known traffic, every counter moves by exactly that traffic; the metrics
//! are on their own listener only; JSON log lines carry no secret.

mod common;

use common::{Serve, codestats, ok};
use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

/// Every sample of a scrape, keyed `name{label="value",…}` with the labels
/// sorted, so a key does not depend on the exporter's label order.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value.parse().expect("sample value");
        let key = match series.split_once('{') {
            None => series.to_owned(),
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                let mut pairs: Vec<&str> = split_labels(labels);
                pairs.sort_unstable();
                format!("{name}{{{}}}", pairs.join(","))
            }
        };
        samples.insert(key, value);
    }
    samples
}

/// `a="x",b="y,z"` → `["a=\"x\"", "b=\"y,z\""]` (commas inside quotes kept).
fn split_labels(labels: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        parts.push(&labels[start..]);
    }
    parts
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    pairs.sort_unstable();
    format!("{name}{{{}}}", pairs.join(","))
}

struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0.get(&key(name, labels)).copied().unwrap_or(0.0)
    }
}

async fn scrape(url: &str) -> Scrape {
    let response = reqwest::get(url).await.expect("scrape /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Scrape(parse(&response.text().await.unwrap()))
}

#[tokio::test]
async fn counters_move_by_exactly_the_traffic_sent() {
    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", "mia"]).await);
    let token = ok(codestats(d, &["machines", "add", "mia", "laptop"]).await)
        .trim()
        .to_owned();
    let data = tempfile::tempdir().unwrap();
    let metrics_port = sql::testing::free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let log_path = data.path().join("serve.log");
    let serve = Serve::start_with_stderr(
        d,
        data.path(),
        &[
            ("CODESTATS_METRICS_LISTEN", &metrics_listen),
            ("CODESTATS_LOG_FORMAT", "json"),
            ("CODESTATS_ROLLUP_INTERVAL_SECS", "1"),
        ],
        std::fs::File::create(&log_path).unwrap(),
    )
    .await;
    serve.wait_for("/healthz", |_| true).await;
    let metrics = format!("http://{metrics_listen}/metrics");

    // Never on the public port.
    let public = reqwest::get(serve.url("/metrics")).await.unwrap();
    assert_eq!(public.status(), 404);
    assert!(!public.text().await.unwrap().contains("codestats_"));

    // Anything else on the metrics listener is a JSON error.
    let other = reqwest::get(format!("http://{metrics_listen}/nothing"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert!(other.text().await.unwrap().starts_with("{\"error\":"));
    let post = reqwest::Client::new().post(&metrics).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert!(post.text().await.unwrap().starts_with("{\"error\":"));

    let before = scrape(&metrics).await;
    let client = reqwest::Client::new();
    let pulse = |xp: u32| {
        serde_json::json!({
            "coded_at": chrono::Utc::now().to_rfc3339(),
            "xps": [{"language": "Rust", "xp": xp}],
        })
    };
    let post = |body: serde_json::Value, token: &str| {
        client
            .post(serve.url("/api/my/pulses"))
            .header("x-api-token", token)
            .json(&body)
            .send()
    };
    for xp in 1..=5 {
        assert_eq!(post(pulse(xp), &token).await.unwrap().status(), 201);
    }
    for _ in 0..2 {
        let bad = serde_json::json!({"coded_at": "yesterday", "xps": []});
        assert_eq!(post(bad, &token).await.unwrap().status(), 400);
    }
    for _ in 0..3 {
        assert_eq!(post(pulse(1), "not-a-token").await.unwrap().status(), 403);
    }
    let now = chrono::Utc::now().timestamp() as f64;
    let heartbeats = serde_json::json!([
        {"entity": "/src/a.rs", "type": "file", "time": now - 30.0, "language": "Rust"},
        {"entity": "/src/b.rs", "type": "file", "time": now - 20.0, "language": "Rust"},
        {"entity": "/src/c.rs", "type": "file", "time": now - 10.0, "language": "Rust"},
        {"entity": "/src/d.rs", "type": "file", "time": "not a time"},
    ]);
    let answer = client
        .post(serve.url("/api/v1/users/current/heartbeats.bulk"))
        .bearer_auth(&token)
        .json(&heartbeats)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    for _ in 0..4 {
        assert_eq!(
            client
                .get(serve.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    for _ in 0..2 {
        client.get(serve.url("/")).send().await.unwrap();
    }

    // A live stream counts while it is open.
    let live = client.get(serve.url("/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);

    // The shipper writes 5 pulse rows and 3 heartbeats.
    let started = Instant::now();
    let after = loop {
        let now = scrape(&metrics).await;
        let shipped = now.get("codestats_ship_rows_total", &[])
            - before.get("codestats_ship_rows_total", &[]);
        if shipped >= 8.0 && now.get("codestats_log_unshipped_bytes", &[]) == 0.0 {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not shipped: {shipped}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let requests = "codestats_http_requests_total";
    let pulses = [("route", "/api/my/pulses")];
    assert_eq!(moved(requests, &[pulses[0], ("status", "201")]), 5.0);
    assert_eq!(moved(requests, &[pulses[0], ("status", "400")]), 2.0);
    assert_eq!(moved(requests, &[pulses[0], ("status", "403")]), 3.0);
    assert_eq!(
        moved(requests, &[("route", "/healthz"), ("status", "200")]),
        4.0
    );
    let bulk = ("route", "/api/v1/users/current/heartbeats.bulk");
    assert_eq!(moved(requests, &[bulk, ("status", "202")]), 1.0);
    let site: f64 = ["200", "304", "404"]
        .iter()
        .map(|s| moved(requests, &[("route", "site"), ("status", s)]))
        .sum();
    assert_eq!(site, 2.0);
    assert_eq!(
        moved(requests, &[("route", "/live"), ("status", "200")]),
        1.0
    );

    assert_eq!(moved("codestats_pulses_accepted_total", &[]), 5.0);
    let rejected = "codestats_pulses_rejected_total";
    assert_eq!(moved(rejected, &[("reason", "invalid")]), 2.0);
    assert_eq!(moved(rejected, &[("reason", "unauthenticated")]), 3.0);
    assert_eq!(moved("codestats_heartbeats_accepted_total", &[]), 3.0);
    assert_eq!(
        moved(
            "codestats_heartbeats_rejected_total",
            &[("reason", "invalid")]
        ),
        1.0
    );
    assert_eq!(moved("codestats_ship_rows_total", &[]), 8.0);
    assert_eq!(moved("codestats_ship_block_rows_sum", &[]), 8.0);
    // 5 pulses and 1 heartbeat request: 6 records, each fsync'd in some commit.
    assert_eq!(moved("codestats_log_commit_records_sum", &[]), 6.0);
    assert!(moved("codestats_log_fsync_seconds_count", &[]) >= 1.0);
    assert_eq!(
        after.get("codestats_log_oldest_unshipped_seconds", &[]),
        0.0
    );
    assert_eq!(
        after.get("codestats_live_subscribers", &[("stream", "front")]),
        1.0
    );
    assert!(after.get("codestats_http_open_connections", &[]) >= 1.0);
    assert_eq!(
        moved("codestats_clickhouse_errors_total", &[("op", "ship")]),
        0.0
    );
    drop(live);

    // The rollups report their runs, and note them for `codestats doctor`.
    let started = Instant::now();
    loop {
        let now = scrape(&metrics).await;
        let full = now.get(
            "codestats_rollup_last_success_timestamp_seconds",
            &[("scope", "full")],
        );
        let incremental = now.get(
            "codestats_rollup_last_success_timestamp_seconds",
            &[("scope", "incremental")],
        );
        if full > 0.0 && incremental > 0.0 {
            assert!(
                now.get(
                    "codestats_build_duration_seconds_count",
                    &[("kind", "full")]
                ) >= 1.0
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no rollup reported"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = jobs::status::Status::load(&data.path().join(jobs::status::STATUS_FILE))
        .unwrap()
        .expect("rollups.json written");
    assert!(status.full.is_some());

    // Every log line is one JSON object, and no secret is in any of them.
    drop(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let password = sql::testing::binary_env(d)
        .await
        .into_iter()
        .find(|(k, _)| *k == "CODESTATS_CLICKHOUSE_PASSWORD")
        .map(|(_, v)| v)
        .unwrap();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let fields: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(value).expect("an object");
        assert!(
            fields.contains_key("timestamp") && fields.contains_key("level"),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines >= 3, "only {lines} log lines");
    assert!(log.contains("serving metrics"));
    assert!(!log.contains(&token), "a token in the log");
    assert!(
        !log.contains(&password),
        "the ClickHouse password in the log"
    );
}

#[tokio::test]
async fn the_metrics_address_cannot_be_the_public_one() {
    let db = sql::test_db!();
    let port = sql::testing::free_port();
    let listen = format!("127.0.0.1:{port}");
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--listen", &listen, "--metrics-listen", &listen])
        .envs(sql::testing::binary_env(db.database()).await)
        .env("CODESTATS_DATA_DIR", data.path())
        .output()
        .unwrap();
    common::fails(out, &["never served on the public port"]);
}
