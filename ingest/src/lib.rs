//! The codestats HTTP API: health, the Code::Stats pulse endpoint and read API.

pub mod error;
pub mod health;

use axum::{Router, middleware, routing::get};
use sql::Db;
use std::sync::Arc;

/// Everything a request handler may use.
pub struct App {
    pub db: Db,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(db: Db) -> AppState {
        Arc::new(App { db })
    }
}

/// Every route of the API, in one place.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .fallback(error::not_found)
        .layer(middleware::from_fn(error::log_server_errors))
        .with_state(app)
}
