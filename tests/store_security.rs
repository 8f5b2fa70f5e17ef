//! The embedded ClickHouse as another local user would see it: no user
//! connects without its password, the passwords stay owner-only, and the
//! analyst's limits leave room for ingest.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

mod common;

use common::{BIN, fails, ok, stderr};
use sql::local_server::{self, LocalServerConfig};

/// A data dir of its own whose ClickHouse runs on free ports in the
/// background (`codestats clickhouse start`); stopped when dropped.
struct DataDir {
    dir: tempfile::TempDir,
    http: u16,
    tcp: u16,
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = self.cmd(&["clickhouse", "stop"]).output();
    }
}

impl DataDir {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            http: sql::testing::free_port(),
            tcp: sql::testing::free_port(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_remove("CODESTATS_CLICKHOUSE_URL")
            .env_remove("CODESTATS_CLICKHOUSE_USER")
            .env_remove("CODESTATS_CLICKHOUSE_PASSWORD")
            .env_remove("CODESTATS_ANALYST_USER")
            .env_remove("CODESTATS_ANALYST_PASSWORD")
            .env("CODESTATS_DATA_DIR", self.dir.path())
            .env(
                "CODESTATS_LOCAL_CLICKHOUSE_HTTP_PORT",
                self.http.to_string(),
            )
            .env("CODESTATS_LOCAL_CLICKHOUSE_TCP_PORT", self.tcp.to_string())
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn server(&self) -> LocalServerConfig {
        let mut config = LocalServerConfig::for_data_dir(self.dir.path());
        config.http_port = self.http;
        config.tcp_port = self.tcp;
        config
    }

    fn file(&self, name: &str) -> PathBuf {
        self.server().dir.join(name)
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The user names `users.xml` declares.
fn users_in(users_xml: &str) -> Vec<String> {
    let section = users_xml
        .split_once("<users>")
        .and_then(|(_, rest)| rest.split_once("</users>"))
        .expect("a <users> section")
        .0;
    let mut users = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find('<') {
        let tag = &rest[start + 1..];
        let name_end = tag.find(['>', ' ', '/']).unwrap();
        let name = &tag[..name_end];
        if name.starts_with('!') {
            rest = &tag[tag.find("-->").unwrap() + 3..];
            continue;
        }
        users.push(name.to_owned());
        let close = format!("</{name}>");
        rest = &tag[tag.find(&close).expect("closed user") + close.len()..];
    }
    users
}

/// Sends `sql` to the server on `port` over HTTP as `user` (none: no
/// credentials at all) without a password; returns status and body.
async fn without_password(port: u16, user: Option<&str>, sql: &str) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .body(sql.to_owned());
    if let Some(user) = user {
        request = request.query(&[("user", user)]);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Every way in without a password is refused, a write included.
async fn assert_no_way_in_without_a_password(port: u16, users: &[String], database: &str) {
    assert!(!users.is_empty());
    let insert = format!(
        "INSERT INTO {database}.machines (machine_id, user_id, name, token_hash) \
         VALUES (4242, 1, 'evil', 'x')"
    );
    let mut attempts: Vec<Option<&str>> = vec![None, Some("default")];
    attempts.extend(users.iter().map(|u| Some(u.as_str())));
    for user in attempts {
        for sql in ["SELECT 1", insert.as_str()] {
            let (status, body) = without_password(port, user, sql).await;
            assert_ne!(status, 200, "{user:?} got in without a password: {body}");
            assert!(
                ["Code: 192", "Code: 193", "Code: 194"]
                    .iter()
                    .any(|c| body.contains(c)),
                "{user:?}: not an authentication error: {body}"
            );
        }
    }
}

#[tokio::test]
async fn the_test_server_lets_nobody_in_without_a_password() {
    let db = sql::test_db!();
    let server = sql::testing::server().await;
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut users = vec![server.writer.user.clone(), server.analyst.user.clone()];
    if std::env::var_os("CODESTATS_TEST_CLICKHOUSE_URL").is_none() {
        let config = sql::testing::test_server_config();
        let users_xml = std::fs::read_to_string(config.dir.join("users.xml")).unwrap();
        users = users_in(&users_xml);
        assert_eq!(
            users,
            [local_server::WRITER_USER, local_server::ANALYST_USER]
        );
        assert_eq!(mode(&config.credentials_path()), 0o600);
        assert_eq!(mode(&config.dir.join("users.xml")), 0o600);
    }
    assert_no_way_in_without_a_password(port, &users, db.database()).await;
    let machines: u64 = db
        .client()
        .query("SELECT count() FROM machines")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(machines, 0, "a machine was inserted without a password");
}

/// `users.xml` as codestats wrote it before the users had passwords.
const PASSWORDLESS_USERS_XML: &str = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default><analyst><readonly>1</readonly></analyst></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <analyst>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>analyst</profile>
      <quota>default</quota>
    </analyst>
  </users>
  <quotas><default><interval><duration>3600</duration></interval></default></quotas>
</yandex>
"#;

#[tokio::test]
async fn an_old_data_dir_gets_passwords_and_they_must_stay_private() {
    let data = DataDir::new();
    let ch_dir = data.server().dir;
    std::fs::create_dir_all(&ch_dir).unwrap();
    std::fs::write(data.file("users.xml"), PASSWORDLESS_USERS_XML).unwrap();
    std::fs::set_permissions(
        data.file("users.xml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    // An admin command starts the server for itself, upgrading the dir.
    ok(data.run(&["users", "add", "erin"]));
    let credentials = data.file("credentials");
    assert_eq!(mode(&credentials), 0o600);
    assert_eq!(mode(&data.file("users.xml")), 0o600);
    assert_eq!(
        mode(&ch_dir) & 0o077,
        0,
        "the server's folder is owner-only"
    );
    let users_xml = std::fs::read_to_string(data.file("users.xml")).unwrap();
    assert!(!users_xml.contains("<password>"), "{users_xml}");
    let users = users_in(&users_xml);
    assert_eq!(
        users,
        [local_server::WRITER_USER, local_server::ANALYST_USER]
    );

    // Running in the background, the server lets nobody in without a
    // password; codestats logs in with the file's.
    ok(data.run(&["clickhouse", "start"]));
    assert_no_way_in_without_a_password(data.http, &users, "codestats").await;
    assert!(ok(data.run(&["users", "list"])).starts_with("erin\t"));
    assert_eq!(
        ok(data.run(&[
            "sql",
            "SELECT user FROM system.processes WHERE position(query, 'whoami') > 0",
            "--format",
            "csv",
        ])),
        format!("user\n{}\n", local_server::ANALYST_USER)
    );
    let status = ok(data.run(&["clickhouse", "status"]));
    assert!(
        status.contains("clickhouse-client --config-file"),
        "{status}"
    );
    // The client configs it names log in, the analyst's read-only.
    for (user, readonly) in [
        (local_server::WRITER_USER, "0"),
        (local_server::ANALYST_USER, "1"),
    ] {
        let config = data.server().client_config_path(user);
        assert_eq!(mode(&config), 0o600);
        let out = Command::new("clickhouse-client")
            .arg("--config-file")
            .arg(&config)
            .args([
                "--query",
                "SELECT value FROM system.settings WHERE name = 'readonly'",
            ])
            .output()
            .expect("clickhouse-client: scripts/install-deps");
        assert_eq!(common::stdout(&out).trim(), readonly, "{}", stderr(&out));
    }
    assert!(
        !status.contains(
            data.server()
                .credentials()
                .unwrap()
                .writer
                .password
                .expose()
        ),
        "status prints a password"
    );

    // A credentials file others may read is refused, by every command.
    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [
        &["users", "list"][..],
        &["sql", "SELECT 1"],
        &["clickhouse", "status"],
    ] {
        fails(data.run(args), &["chmod 600"]);
    }
    let serve = data.run(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{}", sql::testing::free_port()),
    ]);
    fails(serve, &["chmod 600"]);
    ok(data.run(&["clickhouse", "stop"]));
    // Nor does the server start with it.
    fails(data.run(&["clickhouse", "start"]), &["chmod 600"]);
    fails(data.run(&["users", "list"]), &["chmod 600"]);
    assert!(!local_server::ping(data.http).await, "a server started");

    std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(ok(data.run(&["users", "list"])).starts_with("erin\t"));
}

/// The analyst's queries now running on the server, seen as the writer.
async fn analyst_queries(db: &sql::Db, marker: &str) -> u64 {
    db.client()
        .query("SELECT count() FROM system.processes WHERE user = ? AND position(query, ?) > 0")
        .bind(local_server::ANALYST_USER)
        .bind(marker)
        .fetch_one()
        .await
        .unwrap()
}

/// Nine seconds of sleeping, three on each of one thread.
const LONG_QUERY: &str = "SELECT count() AS n FROM (SELECT sleep(3) AS long_query \
     UNION ALL SELECT sleep(3) UNION ALL SELECT sleep(3))";

fn spawn_sql(data: &DataDir, sql: &str) -> Child {
    data.cmd(&["sql", sql, "--format", "csv"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn analysts_run_within_their_limits() {
    let data = DataDir::new();
    ok(data.run(&["clickhouse", "start"]));
    ok(data.run(&["migrate"]));

    let settings = ok(data.run(&[
        "sql",
        "SELECT name, value FROM system.settings WHERE name IN \
         ('max_threads', 'max_memory_usage', 'max_memory_usage_for_user', \
          'max_concurrent_queries_for_user', 'priority') ORDER BY name",
        "--format",
        "csv",
    ]));
    assert_eq!(
        settings,
        format!(
            "name,value\nmax_concurrent_queries_for_user,{}\nmax_memory_usage,{}\n\
             max_memory_usage_for_user,{}\nmax_threads,{}\npriority,{}\n",
            local_server::ANALYST_MAX_CONCURRENT_QUERIES,
            local_server::ANALYST_MAX_MEMORY_USAGE,
            local_server::ANALYST_MAX_MEMORY_USAGE_FOR_USER,
            local_server::ANALYST_MAX_THREADS,
            local_server::ANALYST_PRIORITY,
        )
    );

    // 100 million numbers in one array: 800 MB and more.
    fails(
        data.run(&[
            "sql",
            "SELECT length(groupArray(number)) FROM \
             (SELECT number FROM system.numbers LIMIT 100000000)",
        ]),
        &["Code: 241", "Memory limit (for query) exceeded"],
    );

    // A third query while two run is refused. Should one of the two end
    // before the third reaches the server, the round proves nothing: again.
    let writer = sql::Db::new(
        &data.server().url(),
        &data.server().clickhouse_config("codestats").unwrap(),
    )
    .unwrap();
    let mut refused = None;
    for _round in 0..5 {
        let mut long: Vec<Child> = (0..2).map(|_| spawn_sql(&data, LONG_QUERY)).collect();
        let started = Instant::now();
        while analyst_queries(&writer, "long_query").await < 2 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the two long queries never ran together"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let third = data.run(&["sql", "SELECT 1"]);
        let both_still_running = analyst_queries(&writer, "long_query").await == 2;
        for child in &mut long {
            let _ = child.wait();
        }
        if !third.status.success() {
            refused = Some(stderr(&third));
            break;
        }
        assert!(
            !both_still_running,
            "a third analyst query ran beside two others"
        );
    }
    let refused = refused.expect("no round had two queries running throughout");
    assert!(
        refused.contains("Too many simultaneous queries for user analyst"),
        "{refused}"
    );
}

/// A server that answers everything like ClickHouse's `/ping` and writes
/// every request's headers to `log`: what another local user could run on
/// the embedded server's port while it is down.
const IMPOSTOR: &str = r#"
import http.server, sys
log = open(sys.argv[2], "a")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(str(self.headers)); log.flush()
        self.send_response(200); self.end_headers(); self.wfile.write(b"Ok.\n")
    do_POST = do_GET
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

#[test]
fn a_port_held_by_another_user_never_gets_the_credentials() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a listener as another user");
        return;
    }
    let d = DataDir::new();
    let spy = tempfile::tempdir().unwrap();
    std::fs::set_permissions(spy.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = spy.path().join("headers.log");
    let mut impostor = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            IMPOSTOR,
        ])
        .arg(d.http.to_string())
        .arg(&log)
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv python3");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", d.http)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "impostor did not listen: {:?}",
            impostor.try_wait()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Our server cannot take the port: the command fails, and says why.
    let out = d.run(&["users", "list"]);
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert!(!out.status.success(), "ran against the impostor");
    let seen = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !seen.to_ascii_lowercase().contains("authorization"),
        "credentials sent to another user's listener:\n{seen}"
    );
    assert!(
        !seen.contains("cs_") && !seen.contains("password"),
        "{seen}"
    );
    let _ = stderr(&out);
}
