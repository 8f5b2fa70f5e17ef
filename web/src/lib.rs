//! Accounts on the web: sign-up, login, password reset, machines,
//! preferences and export, as server-rendered pages whose forms work
//! without JavaScript. Served by `codestats serve` beside the API
//! (`ingest`) and the static site (`builder::serve`).
//!
//! Every change is written to ClickHouse first; then this process applies
//! it at once through ingest's [`App`](ingest::App) (tokens reloaded, who
//! is public) and the [`SiteHook`] (a profile's pages removed and the
//! shared pages rebuilt).

pub mod config;
pub mod embeds;
mod error;
mod export;
mod form;
mod handlers;
mod limits;
pub mod mail;
mod pages;
pub mod password;
pub mod session;

pub use config::{Registration, SmtpConfig, WebConfig};
pub use error::WebError;

use axum::{
    Router, middleware,
    routing::{get, post},
};
use sql::Db;
use std::{future::Future, pin::Pin, sync::Arc};

/// A user whose pages must change now.
#[derive(Debug, Clone)]
pub struct SiteChange {
    pub user_id: u64,
    pub username: String,
    /// False: private or deleted; their pages go at once.
    pub public: bool,
}

impl SiteChange {
    /// `user` as they are now (public unless private).
    pub fn of(user: &sql::accounts::User) -> Self {
        Self {
            user_id: user.user_id,
            username: user.username.clone(),
            public: !user.is_private(),
        }
    }
}

/// What the site does when a user changed on the web (went private or
/// public, deleted, a machine deleted): remove their pages at once if they
/// are not public, and rebuild theirs and the shared pages. `serve` wires it
/// to the builder and the rollups; it returns within
/// [`SITE_UPDATE_WAIT`](config::SITE_UPDATE_WAIT), the rest going on in the
/// background.
pub type SiteHook =
    Arc<dyn Fn(SiteChange) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Everything a handler may use.
pub struct Web {
    pub(crate) db: Db,
    pub(crate) ingest: ingest::AppState,
    pub(crate) config: WebConfig,
    pub(crate) pages: pages::Pages,
    pub(crate) mailer: Option<mail::Mailer>,
    pub(crate) login_failures: limits::LoginLimits,
    pub(crate) site: Option<SiteHook>,
    /// Deletes finishing in the background (their second pass), mails.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    pub(crate) exports: handlers::export::Exports,
}

pub type WebState = Arc<Web>;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load the page templates: {0}")]
    Templates(#[from] builder::Error),
    #[error(transparent)]
    Mail(#[from] mail::MailError),
}

impl Web {
    pub fn new(
        db: Db,
        ingest: ingest::AppState,
        config: WebConfig,
        theme: Option<&std::path::Path>,
        site: Option<SiteHook>,
    ) -> Result<WebState, StartError> {
        let mailer = config.smtp.as_ref().map(mail::Mailer::new).transpose()?;
        Ok(Arc::new(Web {
            db,
            ingest,
            pages: pages::Pages::new(theme, &config)?,
            mailer,
            login_failures: limits::LoginLimits::new(&config),
            config,
            site,
            tasks: tokio_util::task::TaskTracker::new(),
            exports: handlers::export::Exports::default(),
        }))
    }

    /// Waits for background work (the second pass of deletes) to finish.
    pub async fn shutdown(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Every route of accounts on the web, in one place.
pub fn router(web: WebState) -> Router {
    use handlers::{export as ex, login, machines, preferences as prefs, reset, signup};
    Router::new()
        .route("/signup", get(signup::show).post(signup::submit))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/password-reset", get(reset::show).post(reset::submit))
        .route(
            "/password-reset/{token}",
            get(reset::show_link).post(reset::set_password),
        )
        .route("/my", get(machines::home))
        .route("/my/machines", get(machines::show).post(machines::add))
        .route("/my/machines/{id}/{action}", post(machines::change))
        .route("/my/preferences", get(prefs::show))
        .route("/my/preferences/privacy", post(prefs::privacy))
        .route("/my/preferences/leaderboards", post(prefs::leaderboards))
        .route("/my/preferences/email", post(prefs::email))
        .route("/my/preferences/password", post(prefs::password))
        .route("/my/preferences/sessions", post(prefs::end_sessions))
        .route("/my/preferences/delete", post(prefs::delete))
        .route("/my/pulses.csv", get(ex::csv))
        .route("/my/pulses.parquet", get(ex::parquet))
        .method_not_allowed_fallback(ingest::error::method_not_allowed)
        .layer(middleware::from_fn(error::json_rejections))
        .layer(middleware::from_fn(ingest::error::log_server_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ingest::error::panicked,
        ))
        .with_state(web)
}

/// A one-time link that sets a new password for `user`
/// (`codestats users reset-password`).
pub async fn reset_link(
    db: &Db,
    public_url: &str,
    user: &sql::accounts::User,
) -> sql::Result<String> {
    handlers::reset::create_link(db, public_url, user).await
}

/// A one-time sign-up link valid for `ttl` (`codestats invites create`).
pub async fn invite_link(
    db: &Db,
    public_url: &str,
    ttl: std::time::Duration,
) -> sql::Result<String> {
    let (secret, _) =
        sql::account_tokens::create(db, sql::account_tokens::Kind::Invite, 0, ttl).await?;
    Ok(config::link(
        public_url,
        &format!("/signup?invite={secret}"),
    ))
}

/// Housekeeping, run by `serve` at start and daily: finishes deletes a
/// stopped process left half done (users marked deleted whose rows are
/// still there: their machines are marked, their rows deleted, and once
/// the mark is older than `DELETE_SETTLE` the user row too), and drops
/// expired sessions, links and claims.
pub async fn housekeeping(db: &Db) -> sql::Result<()> {
    use sql::accounts;
    let settled =
        accounts::fresh_version().saturating_sub(accounts::DELETE_SETTLE.as_nanos() as u64);
    for (user_id, marked_at) in accounts::deleted_users(db).await? {
        tracing::info!(user_id, "finishing the delete of a user");
        accounts::mark_machines_deleted(db, user_id).await?;
        accounts::delete_user_rows(db, user_id).await?;
        if marked_at < settled {
            accounts::delete_user_row(db, user_id).await?;
        }
    }
    sql::account_tokens::delete_expired(db).await?;
    sql::claims::delete_expired(db).await?;
    Ok(())
}
