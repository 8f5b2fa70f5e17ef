//! `GET /healthz`: the service is up and ClickHouse answers.

use crate::{AppState, error::AppError};
use axum::{Json, extract::State};
use serde::Serialize;

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
    clickhouse: String,
}

pub async fn healthz(State(app): State<AppState>) -> Result<Json<Health>, AppError> {
    let version = tokio::time::timeout(std::time::Duration::from_secs(3), app.db.version())
        .await
        .map_err(|_| AppError::Unavailable {
            message: "clickhouse did not answer",
            retry_after_secs: 5,
        })?
        .map_err(|e| {
            tracing::warn!(error = %e, "health check: clickhouse unreachable");
            AppError::Unavailable {
                message: "clickhouse is unreachable",
                retry_after_secs: 5,
            }
        })?;
    Ok(Json(Health {
        status: "ok",
        clickhouse: version,
    }))
}
