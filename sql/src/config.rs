//! Where ClickHouse is. No URL means "the embedded default": a local
//! `clickhouse-server` that codestats starts itself under its data dir.

use crate::secret::Secret;
use std::env;

/// Database codestats' tables live in unless `CODESTATS_CLICKHOUSE_DATABASE` says otherwise.
pub const DEFAULT_DATABASE: &str = "codestats";
/// User for the embedded server and for a URL given without `CODESTATS_CLICKHOUSE_USER`.
pub const DEFAULT_USER: &str = "default";
/// Read-only user `codestats sql` connects as unless `CODESTATS_ANALYST_USER` says otherwise.
pub const DEFAULT_ANALYST_USER: &str = crate::local_server::ANALYST_USER;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// `CODESTATS_CLICKHOUSE_URL`, e.g. `http://10.0.0.5:8123`. `None`: run the local server.
    pub url: Option<String>,
    /// `CODESTATS_CLICKHOUSE_USER`.
    pub user: String,
    /// `CODESTATS_CLICKHOUSE_PASSWORD`; never logged.
    pub password: Secret,
    /// `CODESTATS_CLICKHOUSE_DATABASE`.
    pub database: String,
    /// `CODESTATS_CLICKHOUSE_CLUSTER`: a cluster of the servers'
    /// `remote_servers`; its shards hold the tables (`crate::cluster`).
    pub cluster: Option<String>,
    /// `CODESTATS_CLICKHOUSE_CLUSTER_URLS`: the HTTP URL of every server of
    /// the cluster, comma-separated. Empty: each host of `system.clusters`
    /// on the port of `url`.
    pub cluster_urls: Vec<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: None,
            user: DEFAULT_USER.to_owned(),
            password: Secret::default(),
            database: DEFAULT_DATABASE.to_owned(),
            cluster: None,
            cluster_urls: Vec::new(),
        }
    }
}

impl ClickHouseConfig {
    /// Defaults overridden by the `CODESTATS_CLICKHOUSE_*` environment variables.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        Self {
            url: non_empty("CODESTATS_CLICKHOUSE_URL"),
            user: non_empty("CODESTATS_CLICKHOUSE_USER").unwrap_or(d.user),
            password: get("CODESTATS_CLICKHOUSE_PASSWORD")
                .map(Secret::new)
                .unwrap_or(d.password),
            database: non_empty("CODESTATS_CLICKHOUSE_DATABASE").unwrap_or(d.database),
            cluster: non_empty("CODESTATS_CLICKHOUSE_CLUSTER").map(|c| c.trim().to_owned()),
            cluster_urls: get("CODESTATS_CLICKHOUSE_CLUSTER_URLS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|u| !u.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// The read-only account `codestats sql` runs queries as. The server, not
/// codestats, makes it read-only: its profile has `readonly = 1` and the
/// result-row and execution-time limits (see `sql/README.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalystConfig {
    /// `CODESTATS_ANALYST_USER`.
    pub user: String,
    /// `CODESTATS_ANALYST_PASSWORD`; never logged.
    pub password: Secret,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        Self {
            user: DEFAULT_ANALYST_USER.to_owned(),
            password: Secret::default(),
        }
    }
}

impl AnalystConfig {
    /// Defaults overridden by the `CODESTATS_ANALYST_*` environment variables.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        Self {
            user: get("CODESTATS_ANALYST_USER")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(d.user),
            password: get("CODESTATS_ANALYST_PASSWORD")
                .map(Secret::new)
                .unwrap_or(d.password),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check(vars: &[(&str, &str)], expected: ClickHouseConfig) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            ClickHouseConfig::from_lookup(|k| map.get(k).cloned()),
            expected
        );
    }

    #[test]
    fn defaults_and_overrides() {
        check(&[], ClickHouseConfig::default());
        check(
            &[("CODESTATS_CLICKHOUSE_URL", "  ")],
            ClickHouseConfig::default(),
        );
        check(
            &[
                ("CODESTATS_CLICKHOUSE_URL", "http://db:8123"),
                ("CODESTATS_CLICKHOUSE_USER", "ingest"),
                ("CODESTATS_CLICKHOUSE_PASSWORD", "pw"),
                ("CODESTATS_CLICKHOUSE_DATABASE", "stats"),
            ],
            ClickHouseConfig {
                url: Some("http://db:8123".into()),
                user: "ingest".into(),
                password: Secret::new("pw"),
                database: "stats".into(),
                cluster: None,
                cluster_urls: Vec::new(),
            },
        );
        check(
            &[
                ("CODESTATS_CLICKHOUSE_URL", "http://db1:8123"),
                ("CODESTATS_CLICKHOUSE_CLUSTER", " stats "),
                (
                    "CODESTATS_CLICKHOUSE_CLUSTER_URLS",
                    "http://db1:8123, http://db2:8123,",
                ),
            ],
            ClickHouseConfig {
                url: Some("http://db1:8123".into()),
                cluster: Some("stats".into()),
                cluster_urls: vec!["http://db1:8123".into(), "http://db2:8123".into()],
                ..Default::default()
            },
        );
    }

    fn check_analyst(vars: &[(&str, &str)], expected: AnalystConfig) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            AnalystConfig::from_lookup(|k| map.get(k).cloned()),
            expected
        );
    }

    #[test]
    fn analyst_defaults_and_overrides() {
        check_analyst(&[], AnalystConfig::default());
        assert_eq!(AnalystConfig::default().user, "analyst");
        check_analyst(&[("CODESTATS_ANALYST_USER", " ")], AnalystConfig::default());
        check_analyst(
            &[
                ("CODESTATS_ANALYST_USER", "reader"),
                ("CODESTATS_ANALYST_PASSWORD", "pw"),
            ],
            AnalystConfig {
                user: "reader".into(),
                password: Secret::new("pw"),
            },
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = ClickHouseConfig {
            password: Secret::new("topsecret"),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
