//! The real WakaTime client from PyPI, `wakatime==13.1.0` (the legacy
//! Python CLI that editor plugins such as vim-wakatime 11 run), pointed at
//! `codestats serve` as a user would configure it: its heartbeats are
//! accepted (exit 0, nothing left in its offline queue, no warning in its
//! log), stored with the editor, OS and machine read from the request and
//! the path only hashed, and the coded time shows on the profile, in
//! `GET /api/users/NAME/coding-time` and in the status bar API.
//!
//! The client is installed into a venv under `target/tmp` (made once, then
//! reused) with `python3 -m venv` and pip; the test fails, never skips,
//! when that is not possible. 13.1.0 predates Python 3.10, so a
//! `sitecustomize.py` on `PYTHONPATH` puts back the `collections` aliases
//! its vendored requests, urllib3, configparser and socks import.
//!
//! `wakatime --today` is not run: 13.1.0 always asks
//! `https://api.wakatime.com/api/v1/users/current/summaries` for it, whatever
//! `--api-url` says, so it cannot be pointed at another server (and would
//! send the key to wakatime.com).

use base64::Engine as _;
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{Serve, codestats, ok};

const WAKATIME: &str = "wakatime==13.1.0";
const NAME: &str = "hacker";
/// The machine the token is made for.
const MACHINE: &str = "laptop";
/// What the client sends as `X-Machine-Name` (`--hostname`).
const HOSTNAME: &str = "thinkpad";
/// How vim-wakatime 11 names itself to the CLI.
const PLUGIN: &str = "vim/9.0 vim-wakatime/11.0.0";
/// Seconds between the heartbeats: under the keystroke timeout, so each
/// gap is coded time.
const GAP: i64 = 300;

/// The `collections` ABC aliases Python 3.10 removed, which 13.1.0's
/// vendored packages import (`from collections import Mapping`, …).
const SITECUSTOMIZE: &str = "\
import collections, collections.abc
for _name in ('Mapping', 'MutableMapping', 'Sequence', 'MutableSequence',
              'Iterable', 'Callable', 'Set', 'MutableSet'):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
";

/// The version of `wakatime` that `python` imports, if any.
fn installed_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('wakatime'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The Python of a venv holding the client: `target/tmp/wakatime-13.1.0`,
/// made (in a staging directory, then moved into place) unless it is
/// already there and works.
fn client_python() -> PathBuf {
    let name = WAKATIME.replace("==", "-");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(&name);
    let python = venv.join("bin/python");
    let wanted = WAKATIME.split_once("==").unwrap().1;
    let works = || installed_version(&python).as_deref() == Some(wanted);
    if works() {
        return python;
    }
    let staging = venv.with_file_name(format!("{name}.staging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let fail = |message: String| -> ! {
        let _ = std::fs::remove_dir_all(&staging);
        panic!("{message}")
    };
    match Command::new("python3")
        .args(["-m", "venv"])
        .arg(&staging)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => fail(format!(
            "cannot make a Python venv with python3 (on Debian: scripts/install-deps python3-venv): {}",
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => fail(format!(
            "cannot run python3 (scripts/install-deps python3 python3-venv): {e}"
        )),
    }
    let pip = Command::new(staging.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            WAKATIME,
        ])
        .output()
        .unwrap_or_else(|e| fail(format!("cannot run pip: {e}")));
    if !pip.status.success() {
        fail(format!(
            "cannot install {WAKATIME} from PyPI; this test needs the real client (and a \
             network to pypi.org the first time): {}",
            String::from_utf8_lossy(&pip.stderr)
        ));
    }
    // Unless another run put one in place meanwhile.
    if works() {
        let _ = std::fs::remove_dir_all(&staging);
    } else {
        let _ = std::fs::remove_dir_all(&venv);
        if std::fs::rename(&staging, &venv).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    assert!(
        works(),
        "{WAKATIME} not importable from {}",
        python.display()
    );
    python
}

/// Where the client runs: its own HOME (config, log, offline queue), the
/// shim and the files it reports.
struct Client {
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Client {
    fn new() -> Self {
        let python = client_python();
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "shim", "project/src"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("shim/sitecustomize.py"), SITECUSTOMIZE).unwrap();
        std::fs::write(
            dir.path().join("project/src/main.rs"),
            "fn main() {\n    println!(\"hello\");\n}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("project/src/lib.rs"),
            "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n",
        )
        .unwrap();
        Self { python, dir }
    }

    fn file(&self, name: &str) -> String {
        self.dir
            .path()
            .join("project/src")
            .join(name)
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `wakatime ARGS` (the venv's console script), with `stdin` on its
    /// standard input.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let script = self.python.parent().unwrap().join("wakatime");
        let mut child = Command::new(&self.python)
            .arg(script)
            .args(args)
            .env("HOME", self.home())
            .env("PYTHONPATH", self.dir.path().join("shim"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // Sends `TimeZone: UTC`: 13.1.0's vendored pytz has no zone
            // files, so it names no other zone.
            .env("TZ", "UTC")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("WAKATIME_HOME")
            .env_remove("PYTHONHOME")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run wakatime");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// The lines of the client's log (`~/.wakatime.log`, JSON per line).
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.home().join(".wakatime.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| json!({"level": "?", "line": l})))
            .collect()
    }

    /// How many heartbeats wait in the client's offline queue.
    fn queued(&self) -> u64 {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import os, sqlite3, sys\n\
                 n = 0\n\
                 if os.path.exists(sys.argv[1]):\n\
                 \x20   c = sqlite3.connect(sys.argv[1])\n\
                 \x20   for (t,) in c.execute(\"SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'heartbeat%'\").fetchall():\n\
                 \x20       n += c.execute('SELECT count(*) FROM ' + t).fetchone()[0]\n\
                 print(n)",
            ])
            .arg(self.home().join(".wakatime.db"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

fn assert_exit_0(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: wakatime exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_wakatime_client_codes_time_onto_the_profile() {
    // First, so a slow install does not count against the server's waits.
    let client = Client::new();
    let started = Instant::now();

    let db = sql::test_db!();
    let d = db.database();
    ok(codestats(d, &["users", "add", NAME]).await);
    let token = ok(codestats(d, &["machines", "add", NAME, MACHINE]).await);
    let token = token.trim().to_owned();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve::start(d, data.path(), &[("CODESTATS_ROLLUP_INTERVAL_SECS", "1")]).await;
    serve.wait_for("/healthz", |_| true).await;

    // All three heartbeats on today's UTC date, and still today when the
    // status bar is asked: within two minutes of midnight, the test waits
    // for it; in a day's first minutes, the heartbeats start at midnight,
    // some minutes ahead of now (the API takes them up to an hour ahead).
    let mut now = chrono::Utc::now().timestamp();
    if 86_400 - now.rem_euclid(86_400) < 120 {
        tokio::time::sleep(Duration::from_secs(
            (86_400 - now.rem_euclid(86_400)) as u64 + 1,
        ))
        .await;
        now = chrono::Utc::now().timestamp();
    }
    let midnight = now - now.rem_euclid(86_400);
    let t0 = (now - 2 * GAP - 60).max(midnight);
    let (t1, t2) = (t0 + GAP, t0 + 2 * GAP);
    let today = chrono::DateTime::from_timestamp(midnight, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();

    // As in ~/.wakatime.cfg's api_url: 13.1.0 posts to it as given.
    let api_url = serve.url("/api/v1/users/current/heartbeats.bulk");
    let (main_rs, lib_rs) = (client.file("main.rs"), client.file("lib.rs"));
    let common_args = [
        "--api-url",
        api_url.as_str(),
        "--key",
        token.as_str(),
        "--plugin",
        PLUGIN,
        "--hostname",
        HOSTNAME,
        "--verbose",
    ];
    // Opening main.rs…
    let (t0s, t1s) = (t0.to_string(), t1.to_string());
    let mut args = common_args.to_vec();
    args.extend(["--entity", &main_rs, "--time", &t0s, "--lineno", "2"]);
    assert_exit_0("first heartbeat", &client.run(&args, ""));
    // …then saving lib.rs, with a buffered heartbeat of main.rs on stdin,
    // as the plugin sends them.
    let extra = json!([{
        "entity": main_rs, "type": "file", "time": t2, "is_write": false,
        "lineno": 3, "cursorpos": 5,
    }]);
    let mut args = common_args.to_vec();
    args.extend([
        "--entity",
        &lib_rs,
        "--time",
        &t1s,
        "--write",
        "--cursorpos",
        "12",
        "--extra-heartbeats",
    ]);
    assert_exit_0("second request", &client.run(&args, &format!("{extra}\n")));

    // The client saw every heartbeat accepted: nothing queued for later,
    // no warning or error, and both requests answered 202.
    let log = client.log();
    let bad: Vec<&Value> = log
        .iter()
        .filter(|l| !matches!(l["level"].as_str(), Some("DEBUG" | "INFO")))
        .collect();
    assert!(bad.is_empty(), "the client logged problems: {bad:#?}");
    let answered = log
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.contains("'response_code': 202"))
        .collect::<Vec<_>>();
    assert_eq!(answered.len(), 2, "{log:#?}");
    // Each heartbeat answered `[{"data": …}, 201]` (logged as Python's repr).
    assert_eq!(
        answered
            .iter()
            .map(|m| m.matches("}, 201]").count())
            .sum::<usize>(),
        3,
        "not every heartbeat was stored: {answered:#?}"
    );
    assert_eq!(client.queued(), 0, "heartbeats left in the offline queue");

    // Stored (shipped within about a second) as the request said.
    let rows = {
        let started = Instant::now();
        loop {
            let rows: Vec<HeartbeatSeen> = db
                .client()
                .query("SELECT ?fields FROM heartbeats FINAL ORDER BY time, time_ms")
                .fetch_all()
                .await
                .unwrap();
            if rows.len() >= 3 {
                break rows;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "heartbeats not in ClickHouse within 30 s: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let times: Vec<i64> = rows.iter().map(|r| i64::from(r.time)).collect();
    assert_eq!(times, [t0, t1, t2], "{rows:#?}");
    for r in &rows {
        assert_eq!(r.entity, "", "paths are stored hashed only: {r:?}");
        assert_eq!(r.entity_hash.len(), 64, "{r:?}");
        assert_eq!(
            (r.editor.as_str(), r.machine.as_str(), r.language.as_str()),
            ("Vim", HOSTNAME, "Rust"),
            "{r:?}"
        );
        if cfg!(target_os = "linux") {
            assert_eq!(r.os, "Linux", "{r:?}");
        } else {
            assert!(!r.os.is_empty() && r.os != "Unknown", "{r:?}");
        }
        assert_eq!(
            (r.kind.as_str(), r.category.as_str(), r.utc_offset),
            ("file", "coding", 0),
            "{r:?}"
        );
    }
    assert_eq!(
        rows.iter().map(|r| r.is_write).collect::<Vec<_>>(),
        [0, 1, 0]
    );
    assert_eq!(
        rows.iter()
            .map(|r| (r.lineno, r.cursorpos))
            .collect::<Vec<_>>(),
        [(2, 0), (0, 12), (3, 5)]
    );
    // Both heartbeats of main.rs have one hash, lib.rs another.
    assert_eq!(rows[0].entity_hash, rows[2].entity_hash);
    assert_ne!(rows[0].entity_hash, rows[1].entity_hash);
    // The paths are nowhere in the database.
    let dir = client.dir.path().to_str().unwrap();
    let leaked: Vec<String> = common::table_rows(&db)
        .await
        .into_iter()
        .filter(|row| row.contains(dir))
        .collect();
    assert!(leaked.is_empty(), "paths stored: {leaked:#?}");

    // The profile shows the coded time once a rollup ran: two gaps.
    let coded = (2 * GAP) as u64;
    let page = serve
        .wait_for(&format!("/users/{NAME}/"), |html| {
            html.contains("Time coded")
        })
        .await;
    let shown = format!(
        "<h2>Time coded <span class=\"xp\">{} min</span></h2>",
        coded / 60
    );
    assert!(page.contains(&shown), "{shown} not on the profile: {page}");
    assert!(page.contains("Vim") && page.contains("Rust"), "{page}");

    let doc: Value = serde_json::from_str(
        &serve
            .wait_for(&format!("/api/users/{NAME}/coding-time"), |_| true)
            .await,
    )
    .unwrap();
    assert_eq!(
        doc,
        json!({
            "user": NAME,
            "total_seconds": coded,
            "languages": {"Rust": coded},
            "editors": {"Vim": coded},
            "dates": {today.as_str(): coded},
        })
    );

    // The status bar (what newer clients' `--today` reads) counts it too.
    let key = base64::engine::general_purpose::STANDARD.encode(&token);
    let r = reqwest::Client::new()
        .get(serve.url("/api/v1/users/current/statusbar/today"))
        .header("Authorization", format!("Basic {key}"))
        .header("TimeZone", "UTC")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bar: Value = r.json().await.unwrap();
    let day = &bar["data"];
    assert_eq!(day["range"]["date"], today.as_str(), "{bar}");
    assert_eq!(
        day["grand_total"]["total_seconds"],
        json!(coded as f64),
        "{bar}"
    );
    assert_eq!(day["grand_total"]["text"], "10 mins", "{bar}");
    for (list, name) in [
        ("editors", "Vim"),
        ("languages", "Rust"),
        ("machines", HOSTNAME),
    ] {
        assert_eq!(day[list][0]["name"], name, "{bar}");
    }

    eprintln!(
        "wakatime 13.1.0 to profile in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// What the test reads back of a stored heartbeat.
#[derive(Debug, sql::clickhouse::Row, serde::Deserialize)]
#[clickhouse(crate = "sql::clickhouse")]
struct HeartbeatSeen {
    time: u32,
    utc_offset: i16,
    entity_hash: String,
    entity: String,
    #[serde(rename = "type")]
    kind: String,
    category: String,
    language: String,
    is_write: u8,
    lineno: u32,
    cursorpos: u32,
    editor: String,
    os: String,
    machine: String,
}
