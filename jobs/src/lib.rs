//! Rollups: read aggregates from ClickHouse, compute every profile's numbers
//! with Polars, hand the models to the builder. Runs on a schedule inside
//! `codestats serve` and by hand with `codestats build`.

pub mod coding;
pub mod compute;
pub mod leaderboards;
pub mod lease;
pub mod rollup;
pub mod schedule;
pub mod seed;
pub mod status;
pub mod streaks;

pub use rollup::{Rollups, RunReport, Scope};
