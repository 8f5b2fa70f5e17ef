//! The command line, declared with clap's derive API.

use crate::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use clap::{Parser, Subcommand};
use std::{net::SocketAddr, path::PathBuf};

#[derive(Debug, Parser)]
#[command(
    name = "codestats",
    version,
    about = "Self-hosted, Code::Stats-compatible coding statistics"
)]
pub struct Cli {
    /// State directory: embedded ClickHouse, ingest log, built site.
    #[arg(long, global = true, env = "CODESTATS_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Log at debug level (RUST_LOG overrides).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Log lines as text for people, or one JSON object per line for log
    /// shippers.
    #[arg(long, global = true, env = "CODESTATS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What a `serve` node does (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Everything, as one node.
    All,
    /// The plugin APIs: pulses and heartbeats into the ingest log.
    Ingest,
    /// The site, accounts, read API and live feed.
    Web,
    /// The rollups: renders and publishes the site, under the builder lease.
    Builder,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (ingest, read API); starts a local ClickHouse
    /// unless CODESTATS_CLICKHOUSE_URL is set.
    Serve {
        /// Address to listen on (ignored when systemd or another
        /// supervisor passes a listening socket: LISTEN_FDS).
        #[arg(long, env = "CODESTATS_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Address of `GET /metrics` (Prometheus), or `off`; never the
        /// public address.
        #[arg(long, env = "CODESTATS_METRICS_LISTEN", default_value = crate::exporter::DEFAULT_METRICS_LISTEN)]
        metrics_listen: String,
        /// What this node does: `ingest` (the plugin APIs), `web` (pages,
        /// accounts, read API, live feed), `builder` (rollups and the
        /// site, one node at a time), or several, comma-separated; `all`
        /// is every one on a single node.
        #[arg(
            long,
            env = "CODESTATS_ROLE",
            value_delimiter = ',',
            default_value = "all"
        )]
        role: Vec<Role>,
    },
    /// Apply the schema migrations that are not applied yet.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Language aliases: names plugins send, shown as another.
    #[command(subcommand)]
    Languages(LanguagesCommand),
    /// Make one-time sign-up links.
    #[command(subcommand)]
    Invites(InvitesCommand),
    /// Manage a user's machines and their API tokens.
    #[command(subcommand)]
    Machines(MachinesCommand),
    /// Run the local ClickHouse server outside `serve` (scripts and tests use this).
    #[command(subcommand)]
    Clickhouse(ClickhouseCommand),
    /// Run read-only SQL (ad hoc, from a file, or a library query) as the
    /// analyst user; print a table or write CSV, JSON or Parquet.
    Sql(crate::cmd::sql::SqlArgs),
    /// Compute the rollups and render the static site into DATA_DIR/site.
    Build {
        /// Every public user (the default without --user).
        #[arg(long)]
        full: bool,
        /// Only these users (and the shared pages).
        #[arg(long = "user", value_name = "NAME")]
        users: Vec<String>,
    },
    /// Import a user's history: a WakaTime data export or a Wakapi
    /// heartbeat export (JSON, into heartbeats), or a Code::Stats pulse
    /// export (CSV, into pulses). Importing a file again changes nothing.
    Import {
        /// The export file.
        file: PathBuf,
        /// Whose history it is.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// wakatime, wakapi or code-stats [default: code-stats for a .csv
        /// file, else wakatime (which reads Wakapi's exports as well)].
        #[arg(long)]
        format: Option<ingest::import::Format>,
        /// The machine label of heartbeats whose export names none.
        #[arg(long, default_value = "import")]
        machine: String,
        /// Do not rebuild the user's pages afterwards.
        #[arg(long)]
        no_build: bool,
    },
    /// Check the installation (config, ClickHouse, schema, disk, secret
    /// files, the ingest log, the rollups) and say what to fix; fails when
    /// something is wrong.
    Doctor,
    /// Dump every table into DIR/codestats-YYYYMMDDTHHMMSSZ/ (gzip'd Native
    /// files and a manifest with row counts and SHA-256s); prints its path.
    Backup {
        /// Where dumps are kept (created if missing).
        dir: PathBuf,
        /// Then keep only the newest N dumps in DIR (this one included) and
        /// remove unfinished ones.
        #[arg(long, value_name = "N", value_parser = parse_keep)]
        keep: Option<usize>,
    },
    /// Restore a dump made by `codestats backup` into an empty store, then
    /// build the site.
    Restore {
        /// The dump's directory (DIR/codestats-YYYYMMDDTHHMMSSZ).
        dump: PathBuf,
        /// Do not build the site afterwards.
        #[arg(long)]
        no_build: bool,
    },
    /// Measure: `bench rollups` times seeding, a full rollup and an incremental one.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Fill the store with synthetic users and pulses (demo, benchmarks).
    Seed {
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Random seed: the same seed gives the same data.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Usernames are PREFIX0, PREFIX1, …
        #[arg(long, default_value = "dev")]
        prefix: String,
        /// Share of users made private, 0 to 1.
        #[arg(long, default_value_t = 0.1)]
        private_share: f64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        email: String,
        /// Keep the profile off the public site, JSON and live feed.
        #[arg(long)]
        private: bool,
    },
    /// List users.
    List,
    /// Change a user's visibility, or whether they are on the leaderboards.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["private", "public", "leaderboards", "no_leaderboards"])))]
    Set {
        name: String,
        #[arg(long, conflicts_with = "public")]
        private: bool,
        #[arg(long)]
        public: bool,
        /// List the user on the leaderboards again (the default).
        #[arg(long, conflicts_with = "no_leaderboards")]
        leaderboards: bool,
        /// Leave the user off every leaderboard, profile still public.
        #[arg(long)]
        no_leaderboards: bool,
    },
    /// Delete a user with their machines and all their XP.
    Delete { name: String },
    /// Print a one-time link that sets a new password for the user (works
    /// for an hour; for servers without SMTP, and users made here).
    ResetPassword { name: String },
}

#[derive(Debug, Subcommand)]
pub enum LanguagesCommand {
    /// Show FROM (any case) as TO on every page, leaderboard, badge and in
    /// the read API; applies to all history at the next full rollup.
    Alias { from: String, to: String },
    /// Remove FROM's alias (a default one too).
    Unalias { from: String },
    /// List the aliases in force (defaults marked).
    List,
}

#[derive(Debug, Subcommand)]
pub enum InvitesCommand {
    /// Print a one-time sign-up link (for CODESTATS_REGISTRATION=invite).
    Create {
        /// Days the link works.
        #[arg(long, default_value_t = 7)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum MachinesCommand {
    /// Add a machine; prints its API token (shown this once) alone on stdout.
    Add { user: String, machine: String },
    /// List a user's machines.
    List { user: String },
    /// Rename a machine.
    Rename {
        user: String,
        machine: String,
        new_name: String,
    },
    /// Issue a new API token (printed alone on stdout); the old one stops working.
    Regenerate { user: String, machine: String },
    /// Refuse the machine's token from now on; its XP stays.
    Deactivate { user: String, machine: String },
    /// Accept the machine's token again.
    Activate { user: String, machine: String },
    /// Delete a machine and the XP it sent.
    Delete { user: String, machine: String },
}

#[derive(Debug, Subcommand)]
pub enum ClickhouseCommand {
    /// Start the data dir's ClickHouse in the background (no-op if it answers).
    /// Ports come from CODESTATS_LOCAL_CLICKHOUSE_HTTP_PORT / _TCP_PORT.
    Start,
    /// Stop the server `clickhouse start` started.
    Stop,
    /// Print the server's URL and version, or fail when it does not answer.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Seed a throw-away database, then time a full and an incremental rollup.
    Rollups {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Users changed before the incremental run.
        #[arg(long, default_value_t = 100)]
        dirty: usize,
    },
}

/// `--keep N`: at least 1 (the dump just made).
fn parse_keep(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of dumps (1 or more)")),
    }
}
