//! Leaderboards, badges and language aliases end to end: users made by the
//! CLI, pulses through `serve`'s plugin API, the site its rollups publish.
//!
//! - the leaderboards' order (ties by name), and no private user and no
//!   user who left them on any board, page or JSON;
//! - every badge and embed is valid XML (or JSON) and shows the profile's
//!   numbers; a private user's answer 404;
//! - an alias added after the pulses changes profiles and leaderboards at
//!   the next full rollup, and leaves `pulses` as sent.

use serde_json::{Value, json};
use std::{collections::BTreeMap, path::Path, time::Duration};

mod common;

use common::{Serve, codestats, ok};

/// A pulse coded now.
async fn post(base: &str, token: &str, xps: Value) {
    common::post(base, token, chrono::Utc::now().to_rfc3339(), xps).await;
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

async fn json_of(url: &str) -> Value {
    let r = get(url).await;
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// A board's entries as (rank, user, xp).
fn entries(board: &Value) -> Vec<(u64, String, u64)> {
    board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["rank"].as_u64().unwrap(),
                e["user"].as_str().unwrap().to_owned(),
                e["xp"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every file under `dir`, as text.
fn texts(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(texts(&path));
        } else {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out
}

/// `level N · X XP` in a badge's text → (N, X).
fn badge_numbers(svg: &str) -> (u32, u64) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("|");
    let at = text
        .find("level ")
        .unwrap_or_else(|| panic!("no level in {text}"));
    let rest = &text[at + "level ".len()..];
    let level: u32 = rest.split(' ').next().unwrap().parse().unwrap();
    let xp = rest
        .split(" · ")
        .nth(1)
        .unwrap()
        .split(" XP")
        .next()
        .unwrap();
    (level, xp.replace(',', "").parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderboards_badges_and_aliases() {
    let db = sql::test_db!();
    let d = db.database();
    let mut tokens = BTreeMap::new();
    for (name, flags) in [
        ("alice", &[][..]),
        ("bob", &[]),
        ("erin", &[]),
        ("carol", &["--private"]),
        ("dave", &[]),
    ] {
        let mut args = vec!["users", "add", name];
        args.extend(flags);
        ok(codestats(d, &args).await);
        let token = ok(codestats(d, &["machines", "add", name, "laptop"]).await);
        tokens.insert(name, token.trim().to_owned());
    }
    ok(codestats(d, &["users", "set", "dave", "--no-leaderboards"]).await);
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(d, data.path(), &[("CODESTATS_ROLLUP_INTERVAL_SECS", "1")]).await;
    serve.wait_for("/healthz", |_| true).await;
    let base = serve.base.clone();
    // `js` is a default alias of JavaScript; `rustlang` has none yet.
    post(&base, &tokens["alice"], json!([{"language": "Rust", "xp": 600}, {"language": "js", "xp": 300}, {"language": "rustlang", "xp": 50}])).await;
    post(
        &base,
        &tokens["bob"],
        json!([{"language": "Rust", "xp": 850}, {"language": "JavaScript", "xp": 100}]),
    )
    .await;
    post(
        &base,
        &tokens["erin"],
        json!([{"language": "Go", "xp": 950}]),
    )
    .await;
    post(
        &base,
        &tokens["carol"],
        json!([{"language": "Rust", "xp": 100000}]),
    )
    .await;
    post(
        &base,
        &tokens["dave"],
        json!([{"language": "Rust", "xp": 90000}]),
    )
    .await;

    let all = serve
        .wait_for("/leaderboards/all/index.json", |body| body.contains("erin"))
        .await;
    let all: Value = serde_json::from_str(&all).unwrap();
    // alice 950 (with rustlang), bob 950, erin 950: one rank, by name.
    assert_eq!(
        entries(&all),
        vec![
            (1, "alice".into(), 950),
            (1, "bob".into(), 950),
            (1, "erin".into(), 950)
        ]
    );
    let week = json_of(&serve.url("/leaderboards/week/index.json")).await;
    assert_eq!(entries(&week), entries(&all));
    let rust = json_of(&serve.url("/leaderboards/all/languages/Rust/index.json")).await;
    assert_eq!(
        entries(&rust),
        vec![(1, "bob".into(), 850), (2, "alice".into(), 600)]
    );
    // The default alias: alice's `js` counts as JavaScript.
    let javascript = json_of(&serve.url("/leaderboards/all/languages/JavaScript/index.json")).await;
    assert_eq!(
        entries(&javascript),
        vec![(1, "alice".into(), 300), (2, "bob".into(), 100)]
    );
    assert_eq!(
        get(&serve.url("/leaderboards/all/languages/js/index.json"))
            .await
            .status(),
        404
    );
    let page = get(&serve.url("/leaderboards/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("alice") && page.contains("erin"), "{page}");

    // Nobody private and nobody who left, anywhere under /leaderboards/.
    let site = data.path().join("site");
    let boards = texts(&site.join("leaderboards"));
    assert!(boards.len() >= 8, "{} files", boards.len());
    for (path, text) in &boards {
        for absent in ["carol", "dave", "100000", "90000"] {
            assert!(!text.contains(absent), "{absent} in {path}");
        }
    }
    // dave left the boards, not the site.
    assert_eq!(get(&serve.url("/users/dave/")).await.status(), 200);

    // Badges and embeds: valid XML, the profile's numbers.
    let profile = json_of(&serve.url("/api/users/alice")).await;
    let total = profile["total_xp"].as_u64().unwrap();
    assert_eq!(total, 950);
    let badge = get(&serve.url("/users/alice/badge.svg")).await;
    assert_eq!(badge.status(), 200);
    assert_eq!(badge.headers()["content-type"], "image/svg+xml");
    assert_eq!(
        badge.headers()["cache-control"],
        builder::serve::CACHE_EMBEDS
    );
    let (level, xp) = badge_numbers(&badge.text().await.unwrap());
    assert_eq!((level, xp), (builder::level::level(total), total));
    for (query, language) in [
        ("Rust", "Rust"),
        ("rust", "Rust"),
        ("js", "JavaScript"),
        ("javascript", "JavaScript"),
    ] {
        let xps = profile["languages"][language]["xps"].as_u64().unwrap();
        let r = get(&serve.url(&format!("/users/alice/badge.svg?language={query}"))).await;
        assert_eq!(r.status(), 200, "{query}");
        assert_eq!(r.headers()["cache-control"], builder::serve::CACHE_EMBEDS);
        let svg = r.text().await.unwrap();
        assert!(svg.contains(language), "{svg}");
        assert_eq!(
            badge_numbers(&svg),
            (builder::level::level(xps), xps),
            "{query}"
        );
        let shields =
            json_of(&serve.url(&format!("/users/alice/shields.json?language={query}"))).await;
        assert_eq!(shields["schemaVersion"], 1);
        assert_eq!(shields["label"], language);
        let message = shields["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("level {}", builder::level::level(xps))),
            "{message}"
        );
    }
    let none = get(&serve.url("/users/alice/badge.svg?language=COBOL")).await;
    assert_eq!(none.status(), 200);
    assert_eq!(badge_numbers(&none.text().await.unwrap()), (0, 0));
    let shields = json_of(&serve.url("/users/alice/shields.json")).await;
    assert_eq!(shields["schemaVersion"], 1);
    assert!(shields["message"].as_str().unwrap().contains("950 XP"));
    let year = get(&serve.url("/users/alice/year.svg")).await;
    assert_eq!(year.status(), 200);
    assert_eq!(
        year.headers()["cache-control"],
        builder::serve::CACHE_EMBEDS
    );
    let year = year.text().await.unwrap();
    roxmltree::Document::parse(&year).unwrap_or_else(|e| panic!("{e}: {year}"));
    let today = chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        year.contains(&format!("<title>{today}: 950 XP</title>")),
        "today's cell is missing: {year}"
    );

    // A private user's embeds are a miss, with or without a language.
    for path in [
        "/users/carol/badge.svg",
        "/users/carol/badge.svg?language=Rust",
        "/users/carol/shields.json",
        "/users/carol/year.svg",
        "/users/nobody/badge.svg?language=Rust",
    ] {
        assert_eq!(get(&serve.url(path)).await.status(), 404, "{path}");
    }
    // One made private by the CLI is a miss within the 2 s reload, before
    // any rollup removes the files.
    ok(codestats(d, &["users", "set", "erin", "--private"]).await);
    let started = std::time::Instant::now();
    while get(&serve.url("/users/erin/badge.svg")).await.status() != 404 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "erin's badge still served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An alias added now: the next full rollup shows `rustlang` as Rust;
    // `pulses` keeps it as sent.
    ok(codestats(d, &["languages", "alias", "rustlang", "Rust"]).await);
    let listed = ok(codestats(d, &["languages", "list"]).await);
    assert!(listed.contains("rustlang\tRust\tset"), "{listed}");
    assert!(listed.contains("js\tJavaScript\tdefault"), "{listed}");
    let build = std::process::Command::new(common::BIN)
        .args(["build", "--full"])
        .envs(sql::testing::binary_env(d).await)
        .env("CODESTATS_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let profile = json_of(&serve.url("/api/users/alice")).await;
    assert_eq!(profile["languages"]["Rust"]["xps"], 650, "{profile}");
    assert!(profile["languages"].get("rustlang").is_none(), "{profile}");
    let rust = json_of(&serve.url("/leaderboards/all/languages/Rust/index.json")).await;
    assert_eq!(
        entries(&rust),
        vec![(1, "bob".into(), 850), (2, "alice".into(), 650)]
    );
    let as_sent: Vec<(String, u64)> = db
        .client()
        .query("SELECT language, sum(xp) FROM pulses GROUP BY language ORDER BY language")
        .fetch_all()
        .await
        .unwrap();
    for sent in ["rustlang", "js", "JavaScript"] {
        assert!(
            as_sent.iter().any(|(l, _)| l == sent),
            "{sent} not in pulses: {as_sent:?}"
        );
    }
    // Removing it applies at the next full rollup too.
    ok(codestats(d, &["languages", "unalias", "rustlang"]).await);
    let build = std::process::Command::new(common::BIN)
        .args(["build", "--full"])
        .envs(sql::testing::binary_env(d).await)
        .env("CODESTATS_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(build.status.success());
    let profile = json_of(&serve.url("/api/users/alice")).await;
    assert_eq!(profile["languages"]["rustlang"]["xps"], 50, "{profile}");

    // Aliases do not chain, and bad ones are refused with a reason.
    common::fails(
        codestats(d, &["languages", "alias", "ecma", "js"]).await,
        &["\"js\" is itself an alias of \"JavaScript\""],
    );
    common::fails(
        codestats(d, &["languages", "alias", "JavaScript", "ECMAScript"]).await,
        &["are aliases of \"JavaScript\""],
    );
    common::fails(
        codestats(d, &["languages", "alias", " ", "Rust"]).await,
        &["empty"],
    );
    common::fails(
        codestats(d, &["languages", "unalias", "nothing"]).await,
        &["not found"],
    );
    common::fails(
        codestats(d, &["users", "set", "alice"]).await,
        &["required"],
    );
}
