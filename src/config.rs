//! The service's configuration: defaults as named constants, each overridable
//! by an environment variable (or the matching flag).

use ingest::IngestConfig;
use sql::ClickHouseConfig;
use std::path::PathBuf;
use web::{SmtpConfig, WebConfig};

/// Where `serve` listens: `CODESTATS_LISTEN` or `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where codestats keeps its state (embedded ClickHouse, ingest log, site):
/// `CODESTATS_DATA_DIR` or `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./var";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub clickhouse: ClickHouseConfig,
    pub ingest: IngestConfig,
    /// `CODESTATS_PUBLIC_URL`: where people reach this server (shown in the
    /// plugin set-up instructions). Unset: `http://` + the listen address
    /// (`serve`), or of `CODESTATS_LISTEN` / the default (other commands).
    pub public_url: String,
    /// `CODESTATS_ROLLUP_INTERVAL_SECS`: seconds between incremental rollups.
    pub rollup_interval_secs: u64,
    /// `CODESTATS_SITE_DIR`: where the site is built and served from
    /// (default `DATA_DIR/site`); several nodes can share one.
    pub site_dir: PathBuf,
    /// `CODESTATS_BUILDER_LEASE_SECS`: the builder lease's term when
    /// several nodes share the store (`jobs::lease`).
    pub lease_term_secs: u64,
    /// `CODESTATS_THEME_DIR`: a folder whose `templates/*.html` and `site/*`
    /// replace the embedded templates and assets of the same name.
    pub theme_dir: Option<PathBuf>,
    /// Accounts on the web (`serve`): `CODESTATS_REGISTRATION`,
    /// `CODESTATS_SMTP_URL`, `CODESTATS_SMTP_FROM`,
    /// `CODESTATS_TRUST_FORWARDED_FOR`. An invalid value is an error `serve`
    /// reports at start.
    pub web: Result<WebConfig, String>,
    /// The numeric settings that could not be read and were replaced by
    /// their defaults, each said once (`codestats doctor` reports them).
    pub invalid: Vec<String>,
}

/// `CODESTATS_SMTP_FROM` when it is not set.
pub const DEFAULT_SMTP_FROM: &str = "codestats <codestats@localhost>";

fn web_config(public_url: &str) -> Result<WebConfig, String> {
    let mut web = WebConfig::new(public_url);
    if let Ok(mode) = std::env::var("CODESTATS_REGISTRATION") {
        web.registration = mode
            .parse()
            .map_err(|e| format!("CODESTATS_REGISTRATION: {e}"))?;
    }
    if let Ok(url) = std::env::var("CODESTATS_SMTP_URL")
        && !url.trim().is_empty()
    {
        web.smtp = Some(SmtpConfig {
            url: sql::secret::Secret::new(url.trim()),
            from: std::env::var("CODESTATS_SMTP_FROM")
                .unwrap_or_else(|_| DEFAULT_SMTP_FROM.to_owned()),
        });
    }
    web.trust_forwarded_for = matches!(
        std::env::var("CODESTATS_TRUST_FORWARDED_FOR").as_deref(),
        Ok("1" | "true" | "yes")
    );
    Ok(web)
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        let mut ingest = IngestConfig::new(&data_dir);
        let mut invalid = Vec::new();
        // CODESTATS_RATE_PER_MINUTE / CODESTATS_RATE_BURST: the per-token rate limit.
        if let Some(n) = env_number("CODESTATS_RATE_PER_MINUTE", &mut invalid) {
            ingest.rate_per_minute = n;
        }
        if let Some(n) = env_number("CODESTATS_RATE_BURST", &mut invalid) {
            ingest.rate_burst = n;
        }
        // CODESTATS_LOG_MAX_BYTES: the ingest log's cap on disk.
        if let Some(n) = env_u64("CODESTATS_LOG_MAX_BYTES", &mut invalid) {
            ingest.log_max_bytes = n;
        }
        // CODESTATS_STORE_ENTITIES=1: keep heartbeats' file paths in clear.
        ingest.store_entities = matches!(
            std::env::var("CODESTATS_STORE_ENTITIES")
                .as_deref()
                .map(str::trim),
            Ok("1" | "true" | "yes")
        );
        // CODESTATS_KEYSTROKE_TIMEOUT_SECS: gaps between heartbeats counted
        // as coding time.
        if let Some(n) =
            env_u64("CODESTATS_KEYSTROKE_TIMEOUT_SECS", &mut invalid).filter(|n| *n > 0)
        {
            ingest.keystroke_timeout = std::time::Duration::from_secs(n);
        }
        let public_url = std::env::var("CODESTATS_PUBLIC_URL").unwrap_or_else(|_| {
            let listen =
                std::env::var("CODESTATS_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
            format!("http://{listen}")
        });
        let rollup_interval_secs = env_number("CODESTATS_ROLLUP_INTERVAL_SECS", &mut invalid)
            .map(u64::from)
            .unwrap_or(jobs::schedule::DEFAULT_INCREMENTAL_SECS);
        let site_dir = std::env::var_os("CODESTATS_SITE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("site"));
        let lease_term_secs = env_u64("CODESTATS_BUILDER_LEASE_SECS", &mut invalid)
            .filter(|n| *n > 1)
            .unwrap_or(jobs::lease::DEFAULT_TERM.as_secs());
        Self {
            site_dir,
            lease_term_secs,
            data_dir,
            clickhouse: ClickHouseConfig::from_env(),
            ingest,
            web: web_config(&public_url),
            public_url,
            rollup_interval_secs,
            theme_dir: std::env::var_os("CODESTATS_THEME_DIR").map(PathBuf::from),
            invalid,
        }
    }
}

/// `name` as a `u32`; a value that is not one is noted in `invalid`.
fn env_number(name: &str, invalid: &mut Vec<String>) -> Option<u32> {
    env_u64(name, invalid).and_then(|n| match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(name, n, "number too large; using the default");
            invalid.push(format!("{name}={n} is too large"));
            None
        }
    })
}

/// `name` as a `u64`; a value that is not one is noted in `invalid`.
fn env_u64(name: &str, invalid: &mut Vec<String>) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => {
            tracing::warn!(name, value, "not a whole number; using the default");
            invalid.push(format!("{name}={value:?} is not a whole number"));
            None
        }
    }
}

/// What is wrong with the environment's settings (`codestats doctor`);
/// empty when nothing is. `Config::new` falls back to defaults instead.
pub fn invalid_values(config: &Config) -> Vec<String> {
    let mut problems = config.invalid.clone();
    if let Err(e) = &config.web {
        problems.push(e.clone());
    }
    for name in ["CODESTATS_PUBLIC_URL", "CODESTATS_CLICKHOUSE_URL"] {
        if let Ok(url) = std::env::var(name)
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push(format!("{name}={url:?} is not an http:// or https:// URL"));
        }
    }
    let listen = std::env::var("CODESTATS_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());
    match listen.parse::<std::net::SocketAddr>() {
        Ok(listen) => {
            let metrics = std::env::var("CODESTATS_METRICS_LISTEN")
                .unwrap_or_else(|_| crate::exporter::DEFAULT_METRICS_LISTEN.to_owned());
            if let Err(e) = crate::exporter::parse_listen(&metrics, listen) {
                problems.push(format!("{e:#}"));
            }
        }
        Err(_) => problems.push(format!("CODESTATS_LISTEN={listen:?} is not an address")),
    }
    problems
}
