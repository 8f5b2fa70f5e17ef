//! The service's configuration: defaults as named constants, each overridable
//! by an environment variable (or the matching flag).

use sql::ClickHouseConfig;
use std::path::PathBuf;

/// Where `serve` listens: `CODESTATS_LISTEN` or `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where codestats keeps its state (embedded ClickHouse, spool, site):
/// `CODESTATS_DATA_DIR` or `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./var";

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub clickhouse: ClickHouseConfig,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            clickhouse: ClickHouseConfig::from_env(),
        }
    }
}
