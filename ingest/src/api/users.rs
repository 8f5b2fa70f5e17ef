//! `GET /api/users/NAME` (and `NAME.json`): the Code::Stats read API,
//! answered from what the rollups published — the builder's read-API
//! document of each public user — never from a scan of raw pulses.
//!
//! The numbers are those of the last rollup that covered the user (at most
//! `CODESTATS_ROLLUP_INTERVAL_SECS` old while `serve` runs); "new" XP is the
//! last 12 hours as of that rollup. Who is shown is decided per request by
//! [`crate::visibility::Visibility`], so a user made private is refused at
//! once, before the next rollup removes their document.
//!
//! Documents are read from disk once and kept in memory with an ETag,
//! checked against the file's size, mtime and inode on every request (one
//! `stat`), so a rollup's new document is answered at once.

use crate::{AppState, error::AppError};
use axum::{
    body::{Body, Bytes},
    extract::{Path, State, rejection::PathRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::SystemTime,
};

pub const USER_NOT_FOUND: &str = "User not found or private.";
/// Documents kept in memory; past this the cache starts over.
pub const CACHE_MAX_DOCUMENTS: usize = 20_000;
/// `Cache-Control` of an answer (documents change with every rollup).
pub const CACHE_CONTROL: &str = "public, max-age=30";

/// Where the published documents are: `dir.join(file_of(username))`
/// (`serve` passes the builder's `paths::api_user_file`), and the coding
/// time ones (`paths::api_coding_file`).
#[derive(Debug, Clone)]
pub struct ReadApiFiles {
    pub dir: PathBuf,
    pub file_of: fn(&str) -> PathBuf,
    pub coding_file_of: fn(&str) -> PathBuf,
}

/// Which document of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The Code::Stats read API's.
    Xp,
    /// Coding time (`/api/users/NAME/coding-time`), an extension: its own
    /// path, so Code::Stats clients never see it.
    Coding,
}

/// One version of a document on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Version {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: std::os::unix::fs::MetadataExt::ino(meta),
        }
    }
}

struct Document {
    version: Version,
    body: Bytes,
    etag: HeaderValue,
}

/// The read API's documents and their cache.
pub struct ReadApi {
    files: Option<ReadApiFiles>,
    cache: RwLock<HashMap<PathBuf, Arc<Document>>>,
}

impl ReadApi {
    pub fn new(files: Option<ReadApiFiles>) -> Self {
        Self {
            files,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The published read-API document of `username` (the Code::Stats
    /// JSON) and its ETag, if there is one. The caller checks who is
    /// public.
    pub async fn published(&self, username: &str) -> Option<(Bytes, HeaderValue)> {
        let doc = self.document(username, Kind::Xp).await?;
        Some((doc.body.clone(), doc.etag.clone()))
    }

    /// The published document of `username`, if there is one.
    async fn document(&self, username: &str, kind: Kind) -> Option<Arc<Document>> {
        let files = self.files.as_ref()?;
        let file_of = match kind {
            Kind::Xp => files.file_of,
            Kind::Coding => files.coding_file_of,
        };
        let path = files.dir.join(file_of(username));
        // One `stat`, on this thread: it is a cheap syscall on a local
        // file, and a hop to the blocking pool would cost more than it.
        let meta = std::fs::metadata(&path).ok()?;
        let version = Version::of(&meta);
        if let Some(doc) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&path)
            && doc.version == version
        {
            return Some(doc.clone());
        }
        let body = tokio::fs::read(&path).await.ok()?;
        // Replaced between stat and read: the next request reloads it.
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&body);
        let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let doc = Arc::new(Document {
            version,
            body: Bytes::from(body),
            etag: HeaderValue::from_str(&format!("\"{tag}\"")).ok()?,
        });
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX_DOCUMENTS {
            cache.clear();
        }
        cache.insert(path, doc.clone());
        Some(doc)
    }
}

pub async fn show(
    State(app): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    answer(app, name, headers, Kind::Xp).await
}

/// `GET /api/users/NAME/coding-time`: `{"user","total_seconds",
/// "languages":{name:seconds},"editors":{name:seconds},"dates":{date:seconds}}`.
pub async fn coding_time(
    State(app): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    answer(app, name, headers, Kind::Coding).await
}

async fn answer(
    app: AppState,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    kind: Kind,
) -> Result<Response, AppError> {
    let not_found = AppError::NotFound(USER_NOT_FOUND);
    let Ok(Path(name)) = name else {
        return Err(not_found);
    };
    // `/api/users/NAME.json` is the static site's name for the same answer.
    let (_, username) = app
        .visibility
        .public_user(&name)
        .or_else(|| app.visibility.public_user(name.strip_suffix(".json")?))
        .ok_or(not_found)?;
    let doc = app
        .read_api
        .document(&username, kind)
        .await
        // Public, but no rollup has published them yet.
        .ok_or(AppError::NotFound(USER_NOT_FOUND))?;
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == doc.etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Body::from(doc.body.clone()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, doc.etag.clone());
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(response)
}
