//! Everything codestats knows about its store: how to reach ClickHouse (or run
//! a local one), the schema and its migrations, accounts and the pulse rows.
//!
//! Other crates never build SQL text of their own from user input: they call
//! the typed functions here, which bind every value.

pub mod account_tokens;
pub mod accounts;
pub mod backup;
pub mod blocks;
pub mod claims;
pub mod cluster;
pub mod coding;
pub mod config;
pub mod db;
pub mod error;
pub mod export;
pub mod heartbeats;
pub mod import;
pub mod languages;
pub mod live_events;
pub mod local_server;
pub mod migrate;
pub mod names;
pub mod nodes;
pub mod pulses;
pub mod queries;
pub mod rollups;
pub mod secret;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;

pub use clickhouse;
pub use config::{AnalystConfig, ClickHouseConfig};
pub use db::Db;
pub use error::{Error, Result};
