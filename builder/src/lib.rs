//! The static codestats site: profile pages, language pages, the front page,
//! SVG charts and the Code::Stats read-API JSON, rendered from the models of
//! [`model`] into a directory that any static file server can serve
//! ([`serve::router`] is ours).
//!
//! ```text
//! index.html  404.html
//! users/NAME/index.html, hours.svg, weekdays.svg, last-14-days.svg
//! users/NAME/badge.svg, year.svg, shields.json          (for READMEs)
//! languages/index.html  languages/LANG/index.html, xp-per-day.svg
//! leaderboards/index.html, index.json
//! leaderboards/PERIOD/[languages/LANG/]index.html, index.json
//! api/users/name.json   charts/xp-per-minute.svg   static/style.css, favicon.svg
//! ```
//!
//! Names become path segments with [`paths::segment`]. The builder does no
//! network I/O and reads nothing but its templates and assets: its only
//! input is a [`model::SiteModel`].

pub mod badge;
mod build;
pub mod charts;
mod embed;
pub mod json;
mod leaderboards;
pub mod level;
pub mod model;
pub mod paths;
mod render;
pub mod serve;
pub mod text;
mod view;
mod write;
pub mod year;

use std::path::{Path, PathBuf};

pub use build::{BuildReport, Builder};
pub use render::{ASSETS, Renderer, TEMPLATES, thousands};

/// Everything that can go wrong while building.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A template failed to parse or render; the message holds tera's chain.
    #[error("template error: {0}")]
    Template(String),
    #[error("chart error: {0}")]
    Chart(String),
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// Two users (case-insensitively) or two languages with one name: one
    /// page would silently replace the other.
    #[error("duplicate {kind} in the site model: {name:?}")]
    Duplicate { kind: &'static str, name: String },
    #[error("refusing to write outside the output directory: {}", .0.display())]
    UnsafePath(PathBuf),
}

impl From<tera::Error> for Error {
    fn from(e: tera::Error) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Template(message)
    }
}

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
