//! `GET /healthz`: whether this node takes pulses, and how its store is.
//!
//! 200 while the ingest log takes pulses, even with ClickHouse away (the
//! node still acknowledges and serves pages: `status` is then `degraded`
//! and `clickhouse` null); 503 when the log is full or cannot be written,
//! since pulses are refused then.

use crate::{AppState, error::AppError};
use axum::{Json, extract::State};
use serde::Serialize;

/// Longest the health check waits for ClickHouse.
pub const CLICKHOUSE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Serialize)]
pub struct Health {
    /// `ok`, or `degraded` while ClickHouse does not answer.
    status: &'static str,
    /// ClickHouse's version; null when it does not answer.
    clickhouse: Option<String>,
    log: LogHealth,
}

#[derive(Serialize)]
struct LogHealth {
    /// Bytes of the log on disk, and its cap.
    bytes: u64,
    max_bytes: u64,
    /// Rows written to ClickHouse by this process.
    shipped_rows: u64,
}

pub async fn healthz(State(app): State<AppState>) -> Result<Json<Health>, AppError> {
    let log = &app.log;
    if let Some(refusal) = log.refusing() {
        return Err(refusal.into());
    }
    let clickhouse = match tokio::time::timeout(CLICKHOUSE_CHECK_TIMEOUT, app.db.version()).await {
        Ok(Ok(version)) => Some(version),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: clickhouse unreachable");
            None
        }
        Err(_) => None,
    };
    Ok(Json(Health {
        status: if clickhouse.is_some() {
            "ok"
        } else {
            "degraded"
        },
        clickhouse,
        log: LogHealth {
            bytes: log.disk_bytes(),
            max_bytes: log.max_bytes(),
            shipped_rows: app
                .shipper
                .stats
                .rows
                .load(std::sync::atomic::Ordering::Relaxed),
        },
    }))
}
