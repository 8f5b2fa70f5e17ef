//! A ClickHouse server of codestats' own: a generated config under the data
//! dir, the Debian `clickhouse-server` binary run as a child process,
//! listening on loopback only.
//!
//! Used by `codestats serve` when no `CODESTATS_CLICKHOUSE_URL` is set (the
//! embedded default, supervised and restarted if it dies), by admin commands
//! when no server is running, and by `codestats clickhouse start|stop` that the
//! scripts and the test suite use.
//!
//! Every user of the server has a password ([`credentials`]); none connects
//! without one.

mod access;
mod credentials;
mod listener;
mod users;

pub use credentials::{Account, Credentials, PASSWORD_BYTES, PRIVATE_FILE_MODE, WRITER_USER};

use crate::error::{Error, Result};
use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use tokio::{process::Child, sync::oneshot, task::JoinHandle};

/// The server binary of Debian's `clickhouse-server` package; `CODESTATS_CLICKHOUSE_SERVER_BIN` overrides.
pub const DEFAULT_SERVER_BINARY: &str = "/usr/sbin/clickhouse-server";
/// HTTP port of the embedded server (not 8123, so it never collides with a system one).
pub const DEFAULT_HTTP_PORT: u16 = 18123;
/// Native-protocol port of the embedded server, for `clickhouse-client --port`.
pub const DEFAULT_TCP_PORT: u16 = 19000;
/// How long a starting server may take to answer `/ping`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server may take after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause before the supervisor restarts a server that died.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// The read-only user `codestats sql` and analysts connect as.
pub const ANALYST_USER: &str = "analyst";
/// Rows an analyst query may return before ClickHouse stops it.
pub const ANALYST_MAX_RESULT_ROWS: u64 = 1_000_000;
/// Seconds an analyst query may run.
pub const ANALYST_MAX_EXECUTION_SECONDS: u64 = 60;
/// Threads one analyst query may use (`max_threads`): on a two-core machine
/// the other core stays with ingest.
pub const ANALYST_MAX_THREADS: u64 = 1;
/// Analyst queries that may run at once (`max_concurrent_queries_for_user`);
/// one more is refused with `Too many simultaneous queries for user`.
pub const ANALYST_MAX_CONCURRENT_QUERIES: u64 = 2;
/// Bytes of memory one analyst query may use (`max_memory_usage`): 512 MiB.
pub const ANALYST_MAX_MEMORY_USAGE: u64 = 512 * 1024 * 1024;
/// Bytes of memory all analyst queries together may use
/// (`max_memory_usage_for_user`): 1 GiB.
pub const ANALYST_MAX_MEMORY_USAGE_FOR_USER: u64 = 1024 * 1024 * 1024;
/// ClickHouse's `priority` of codestats' own queries (ingest's INSERTs,
/// the rollups' reads): 1 is the highest.
pub const WRITER_PRIORITY: u64 = 1;
/// The analyst's `priority`: lower than codestats' own, so a running
/// analyst query pauses between blocks while an INSERT or a rollup query
/// runs, and analysts at their limits do not hold up ingest.
pub const ANALYST_PRIORITY: u64 = 10;
/// How long a running server may take to accept passwords just written to
/// its `users.xml` (ClickHouse rereads it every few seconds).
pub const USERS_RELOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// Permission bits of the server's folder: owner only (it holds the data,
/// the passwords and their hashes).
pub const PRIVATE_DIR_MODE: u32 = 0o700;

#[derive(Debug, Clone)]
pub struct LocalServerConfig {
    /// Everything the server writes lives below this folder.
    pub dir: PathBuf,
    pub http_port: u16,
    pub tcp_port: u16,
    pub binary: PathBuf,
}

impl LocalServerConfig {
    /// The embedded server of a codestats data dir: `DATA_DIR/clickhouse`.
    ///
    /// Ports: `CODESTATS_LOCAL_CLICKHOUSE_HTTP_PORT` and
    /// `CODESTATS_LOCAL_CLICKHOUSE_TCP_PORT` override the defaults.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        let port = |var: &str, default: u16| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            dir: data_dir.join("clickhouse"),
            http_port: port("CODESTATS_LOCAL_CLICKHOUSE_HTTP_PORT", DEFAULT_HTTP_PORT),
            tcp_port: port("CODESTATS_LOCAL_CLICKHOUSE_TCP_PORT", DEFAULT_TCP_PORT),
            binary: std::env::var_os("CODESTATS_CLICKHOUSE_SERVER_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVER_BINARY)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("config.xml")
    }

    /// Where the running server's pid is kept.
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("server.pid")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Writes `config.xml` and `users.xml` (generating the passwords on
    /// first use); rewritten on every start so a changed port or binary
    /// takes effect.
    pub fn write_config(&self) -> Result<()> {
        let credentials = self.credentials()?;
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            fs::create_dir_all(self.dir.join(sub))?;
        }
        let dir = self.dir.canonicalize()?;
        let dir = dir
            .to_str()
            .ok_or_else(|| Error::LocalServer("data dir path is not UTF-8".into()))?;
        if dir.contains(['<', '>', '&', '"', '\'']) {
            return Err(Error::LocalServer(format!(
                "data dir path {dir:?} has characters XML config cannot hold"
            )));
        }
        let config = format!(
            r#"<?xml version="1.0"?>
<!-- Generated by codestats at each start; edits are overwritten. -->
<yandex>
  <logger>
    <level>warning</level>
    <log>{dir}/log/clickhouse-server.log</log>
    <errorlog>{dir}/log/clickhouse-server.err.log</errorlog>
    <size>50M</size>
    <count>3</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>{dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <keep_alive_timeout>3</keep_alive_timeout>
</yandex>
"#,
            http = self.http_port,
            tcp = self.tcp_port,
        );
        fs::write(self.config_path(), config)?;
        self.write_users(&credentials)?;
        Ok(())
    }

    fn command(&self) -> Result<std::process::Command> {
        if !self.binary.exists() {
            return Err(Error::LocalServer(format!(
                "{} not found: install it with `scripts/clickhouse install` \
                 (apt-get install clickhouse-server clickhouse-client) \
                 or set CODESTATS_CLICKHOUSE_URL",
                self.binary.display()
            )));
        }
        self.write_config()?;
        // The server runs inside its folder: every path it gets is absolute.
        let dir = self.dir.canonicalize()?;
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir().join("stdout.log"))?;
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg(format!(
            "--config-file={}",
            dir.join("config.xml").display()
        ))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
        Ok(cmd)
    }

    /// The last lines of the server's error log, to explain a failed start.
    fn error_log_tail(&self) -> String {
        let text = fs::read_to_string(self.log_dir().join("clickhouse-server.err.log"))
            .or_else(|_| fs::read_to_string(self.log_dir().join("stdout.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

/// Answers whether a ClickHouse server on this machine's loopback `port`
/// responds to `GET /ping` with its `Ok.` — and listens as this process's
/// user: a port taken by another local user is never trusted with the
/// credentials (it would receive them with the first query), so it counts
/// as no server, and starting ours on it fails with the server's own error.
pub async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !listener::owned_by_us(port) {
        return false;
    }
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.ends_with(b"Ok.\n"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

/// Waits until the server answers, or fails with its own error message when
/// the process exits first.
async fn wait_ready(config: &LocalServerConfig, child: &mut Child) -> Result<()> {
    let started = Instant::now();
    loop {
        if ping(config.http_port).await {
            tracing::info!(
                url = %config.url(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "local clickhouse ready"
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(Error::LocalServer(format!(
                "clickhouse-server exited with {status} during start:\n{}",
                config.error_log_tail()
            )));
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(Error::LocalServer(format!(
                "clickhouse-server did not answer within {READY_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(config: &LocalServerConfig) -> Result<Child> {
    let mut cmd = config.command()?;
    die_with_parent(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    // Started from a terminal, Ctrl-C must reach codestats only: it stops the
    // server itself, in order.
    cmd.process_group(0).kill_on_drop(true);
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        fs::write(config.pid_path(), pid.to_string())?;
    }
    Ok(child)
}

async fn terminate(config: &LocalServerConfig, child: &mut Child) {
    if let Some(pid) = child.id() {
        send_sigterm(pid);
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(_) => tracing::info!(pid, "local clickhouse stopped"),
            Err(_) => {
                tracing::warn!(pid, "local clickhouse ignored SIGTERM, killing it");
                let _ = child.kill().await;
            }
        }
    }
    let _ = fs::remove_file(config.pid_path());
}

/// Asks the kernel to SIGTERM the server when the process that started it
/// dies, even by SIGKILL, so an embedded server is never left orphaned.
#[allow(unsafe_code)] // pre_exec is unsafe; the closure only makes one async-signal-safe syscall
fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
}

fn send_sigterm(pid: u32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
}

fn is_alive(pid: u32) -> bool {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    kill(Pid::from_raw(pid as i32), None).is_ok()
}

enum Ending {
    Terminate,
    Kill,
}

/// A local server owned by this process: it stops when [`LocalServer::stop`]
/// is called, and is killed if the handle is dropped.
pub struct LocalServer {
    config: LocalServerConfig,
    stop: Option<oneshot::Sender<Ending>>,
    task: Option<JoinHandle<()>>,
}

impl LocalServer {
    /// Starts the server, waits until it answers, then watches it: if it dies
    /// it is started again.
    pub async fn start(config: LocalServerConfig) -> Result<Self> {
        let mut child = spawn(&config)?;
        if let Err(e) = wait_ready(&config, &mut child).await {
            let _ = child.kill().await;
            return Err(e);
        }
        let (stop_tx, mut stop_rx) = oneshot::channel();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    how = &mut stop_rx => {
                        match how {
                            Ok(Ending::Kill) => {
                                let _ = child.kill().await;
                                let _ = fs::remove_file(cfg.pid_path());
                            }
                            _ => terminate(&cfg, &mut child).await,
                        }
                        return;
                    }
                    status = child.wait() => {
                        tracing::error!(status = ?status, log = %cfg.error_log_tail(), "local clickhouse exited; restarting it");
                        tokio::time::sleep(RESTART_BACKOFF).await;
                        match spawn(&cfg) {
                            Ok(new_child) => child = new_child,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot restart local clickhouse");
                                return;
                            }
                        }
                    }
                }
            }
        });
        Ok(Self {
            config,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    pub fn url(&self) -> String {
        self.config.url()
    }

    pub fn config(&self) -> &LocalServerConfig {
        &self.config
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it
    /// is gone.
    pub async fn kill(self) {
        self.end(Ending::Kill).await
    }

    /// Stops the server with SIGTERM and waits until it has exited.
    pub async fn stop(self) {
        self.end(Ending::Terminate).await
    }

    async fn end(mut self, how: Ending) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(how);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Starts a server that outlives this process (for scripts and the test
/// suite); its pid is kept in `DIR/server.pid`. Returns once it accepts the
/// passwords of `DIR/credentials` when one is already answering.
pub async fn start_detached(config: &LocalServerConfig) -> Result<()> {
    if ping(config.http_port).await {
        return config.running_credentials().await.map(drop);
    }
    let mut cmd = tokio::process::Command::from(config.command()?);
    cmd.process_group(0).kill_on_drop(false);
    let mut child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        fs::write(config.pid_path(), pid.to_string())?;
    }
    wait_ready(config, &mut child).await
}

/// Stops a server started by [`start_detached`]; Ok when none was running.
pub async fn stop_detached(config: &LocalServerConfig) -> Result<()> {
    let Ok(text) = fs::read_to_string(config.pid_path()) else {
        return Ok(());
    };
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| Error::LocalServer(format!("bad pid file {}", config.pid_path().display())))?;
    if is_alive(pid) {
        send_sigterm(pid);
        let started = Instant::now();
        while is_alive(pid) && !is_zombie(pid) {
            if started.elapsed() > STOP_TIMEOUT {
                // MergeTree parts are written atomically: a kill loses no
                // committed data, only the time a graceful stop would save.
                tracing::warn!(pid, timeout = ?STOP_TIMEOUT, "clickhouse ignored SIGTERM; killing it");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = fs::remove_file(config.pid_path());
    Ok(())
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}
