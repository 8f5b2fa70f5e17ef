//! Serving the built directory: [`router`].
//!
//! - `GET`/`HEAD` only (`405 {"error": …}` otherwise); a directory answers
//!   its `index.html`; a miss answers `404.html` with status 404 to a
//!   client that accepts HTML, `404 {"error": "not found"}` to any other.
//! - No path leaves the directory: the path is percent-decoded once, then
//!   any segment that starts with `.` (`.`, `..`, hidden and temporary
//!   files) or holds `\` or NUL is a miss.
//! - `api/users/…` is never answered from the directory: those documents
//!   go out through ingest's read API only, which checks who is public.
//! - Content type by extension; `Cache-Control` long and immutable under
//!   `/static/` (pages link assets with `?v=<hash>`), five minutes for the
//!   files READMEs embed (`users/NAME/badge.svg`, `year.svg`,
//!   `shields.json`: GitHub's camo and shields.io fetch them through caches
//!   of their own, and would otherwise ask on every view), revalidated
//!   elsewhere; `ETag` from the content, `If-None-Match` → 304; gzip when
//!   accepted.
//! - Hot files are kept in memory with their gzip variant, checked against
//!   the file's size, mtime and inode on every request (one `stat`), so a
//!   rebuilt file or a swapped-in directory is picked up at once.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};

use crate::paths;

/// `Cache-Control` of `/static/` assets (their URLs carry a version).
pub const CACHE_STATIC: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of pages, charts and JSON: cached, but revalidated on
/// every use (a 304 while the ETag holds), so a profile made private or
/// deleted is gone from a browser at once.
pub const CACHE_PAGES: &str = "public, no-cache";
/// `Cache-Control` of the files READMEs embed (`users/NAME/badge.svg`,
/// `year.svg`, `shields.json`): camo and shields.io may keep them 5 minutes.
pub const CACHE_EMBEDS: &str = "public, max-age=300";
/// `Cache-Control` of the 404 page.
pub const CACHE_MISS: &str = "no-cache";
/// Files larger than this are served but not kept in memory.
pub const MAX_CACHED_FILE: usize = 4 << 20;
/// When the cache grows past this, it is emptied.
pub const CACHE_BUDGET: usize = 256 << 20;
/// Smaller bodies are not compressed.
const MIN_GZIP: usize = 512;

/// A router serving `output_dir` (see the module documentation). Mount it
/// as a fallback beside the API routes.
pub fn router(output_dir: impl Into<PathBuf>) -> Router {
    let site = Arc::new(Site {
        root: output_dir.into(),
        cache: RwLock::new(HashMap::new()),
        cached_bytes: AtomicUsize::new(0),
    });
    Router::new().fallback(handle).with_state(site)
}

struct Site {
    root: PathBuf,
    cache: RwLock<HashMap<PathBuf, Arc<Entry>>>,
    cached_bytes: AtomicUsize,
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Version {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

struct Entry {
    version: Version,
    body: Bytes,
    gzip: Option<Bytes>,
    /// Hex digest of `body`; the ETag is `"tag"`, or `"tag-gz"` for gzip.
    tag: String,
    content_type: &'static str,
}

/// Content type by file extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("image/svg")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/xml")
}

/// The request path as plain segments, or `None` if it could leave the
/// directory or name a hidden file.
fn segments(path: &str) -> Option<Vec<String>> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let mut out = Vec::new();
    for segment in decoded.split('/') {
        if segment.is_empty() {
            continue;
        }
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        out.push(segment.to_owned());
    }
    Some(out)
}

impl Site {
    /// The file for `segments`: itself, or `index.html` in that directory.
    fn locate(&self, segments: &[String]) -> Option<(PathBuf, fs::Metadata)> {
        let mut path = self.root.clone();
        path.extend(segments);
        let mut meta = fs::metadata(&path).ok()?;
        if meta.is_dir() {
            path.push("index.html");
            meta = fs::metadata(&path).ok()?;
        }
        meta.is_file().then_some((path, meta))
    }

    /// The cached entry for `path`, loaded (off the async threads) if
    /// missing or stale.
    async fn entry(&self, path: PathBuf, meta: &fs::Metadata) -> Option<Arc<Entry>> {
        let version = Version::of(meta);
        if let Some(entry) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&path)
            && entry.version == version
        {
            return Some(entry.clone());
        }
        let load_path = path.clone();
        let entry = tokio::task::spawn_blocking(move || load(&load_path))
            .await
            .ok()??;
        let entry = Arc::new(entry);
        let size = entry.body.len() + entry.gzip.as_ref().map_or(0, Bytes::len);
        if size <= MAX_CACHED_FILE {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            if self.cached_bytes.load(Ordering::Relaxed) + size > CACHE_BUDGET {
                cache.clear();
                self.cached_bytes.store(0, Ordering::Relaxed);
            }
            if let Some(old) = cache.insert(path, entry.clone()) {
                let old_size = old.body.len() + old.gzip.as_ref().map_or(0, Bytes::len);
                self.cached_bytes.fetch_sub(old_size, Ordering::Relaxed);
            }
            self.cached_bytes.fetch_add(size, Ordering::Relaxed);
        }
        Some(entry)
    }
}

/// Reads a file, digests it and compresses it if worth it.
fn load(path: &Path) -> Option<Entry> {
    let meta = fs::metadata(path).ok()?;
    let body = fs::read(path).ok()?;
    // the file may have been replaced between stat and read: the version
    // then no longer matches and the next request reloads it
    let content_type = content_type(path);
    let tag = content_tag(&body);
    let gzip = if compressible(content_type) && body.len() >= MIN_GZIP {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 3),
            flate2::Compression::default(),
        );
        encoder.write_all(&body).ok()?;
        let compressed = encoder.finish().ok()?;
        (compressed.len() < body.len()).then(|| Bytes::from(compressed))
    } else {
        None
    };
    Some(Entry {
        version: Version::of(&meta),
        body: Bytes::from(body),
        gzip,
        tag,
        content_type,
    })
}

/// Whether `Accept-Encoding` allows gzip.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// The ETag of `body`, without its quotes: hex of its SHA-256's first
/// 12 bytes.
pub fn content_tag(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Whether `If-None-Match` names the entry tagged `tag` (in any encoding).
pub fn not_modified(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == tag || t.strip_suffix("-gz") == Some(tag))
}

async fn handle(
    State(site): State<Arc<Site>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed",
            Some("GET, HEAD"),
        );
    }
    let head = method == Method::HEAD;
    let Some(segments) = segments(uri.path()) else {
        return not_found(&site, &headers, head).await;
    };
    let api = segments.first().map(String::as_str) == Some("api");
    // Read-API documents are answered by the read API alone, which decides
    // who is public now; however the path is spelled (`//api/users/x.json`,
    // `/%61pi/users/x.json`, a trailing `/`), they are not served as files.
    if api && segments.get(1).map(String::as_str) == Some("users") {
        return json_error(StatusCode::NOT_FOUND, "User not found or private.", None);
    }
    if let Some((path, meta)) = site.locate(&segments)
        && let Some(entry) = site.entry(path, &meta).await
    {
        let cache = cache_control(&segments);
        return respond(&entry, &headers, StatusCode::OK, cache, api, head);
    }
    if api {
        let mut response = json_error(StatusCode::NOT_FOUND, "not found", None);
        if head {
            *response.body_mut() = Body::empty();
        }
        return response;
    }
    not_found(&site, &headers, head).await
}

/// The `Cache-Control` of a file found at `segments`.
fn cache_control(segments: &[String]) -> &'static str {
    match segments {
        [first, ..] if first == paths::STATIC_DIR => CACHE_STATIC,
        [users, _, file]
            if users == paths::USERS_DIR
                && [paths::BADGE_SVG, paths::YEAR_SVG, paths::SHIELDS_JSON]
                    .contains(&file.as_str()) =>
        {
            CACHE_EMBEDS
        }
        _ => CACHE_PAGES,
    }
}

/// An error answer in the API's shape, `{"error": "..."}`.
fn json_error(status: StatusCode, message: &str, allow: Option<&'static str>) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, CACHE_MISS),
        ],
        body,
    )
        .into_response();
    if let Some(allow) = allow {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    response
}

/// Whether the client takes an HTML page (a browser) rather than JSON.
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

async fn not_found(site: &Site, headers: &HeaderMap, head: bool) -> Response {
    if !wants_html(headers) {
        let mut response = json_error(StatusCode::NOT_FOUND, "not found", None);
        if head {
            *response.body_mut() = Body::empty();
        }
        return response;
    }
    let path = site.root.join("404.html");
    if let Ok(meta) = fs::metadata(&path)
        && let Some(entry) = site.entry(path, &meta).await
    {
        // a 404 is never answered with 304 (`respond` checks tags on 200 only)
        return respond(
            &entry,
            headers,
            StatusCode::NOT_FOUND,
            CACHE_MISS,
            false,
            head,
        );
    }
    json_error(StatusCode::NOT_FOUND, "not found", None)
}

fn respond(
    entry: &Entry,
    headers: &HeaderMap,
    status: StatusCode,
    cache_control: &'static str,
    cors: bool,
    head: bool,
) -> Response {
    let gzip = entry.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let etag = match gzip {
        Some(_) => format!("\"{}-gz\"", entry.tag),
        None => format!("\"{}\"", entry.tag),
    };
    let mut builder = Response::builder()
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Ok(value) = HeaderValue::from_str(&etag) {
        builder = builder.header(header::ETAG, value);
    }
    if entry.gzip.is_some() {
        builder = builder.header(header::VARY, "accept-encoding");
    }
    if cors {
        builder = builder.header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    }
    if status == StatusCode::OK && not_modified(headers, &entry.tag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let body = match gzip {
        Some(compressed) => {
            builder = builder.header(header::CONTENT_ENCODING, "gzip");
            compressed.clone()
        }
        None => entry.body.clone(),
    };
    builder = builder
        .status(status)
        .header(header::CONTENT_TYPE, entry.content_type)
        .header(header::CONTENT_LENGTH, body.len());
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths() {
        let ok = |p: &str, expected: &[&str]| {
            assert_eq!(
                segments(p).as_deref(),
                Some(&expected.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]),
                "{p}"
            );
        };
        ok("/", &[]);
        ok("/users/alice/", &["users", "alice"]);
        ok("/users/%C3%91and%C3%BA/", &["users", "Ñandú"]);
        ok("//a//b", &["a", "b"]);
        for bad in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E/%2E%2E/etc/passwd",
            "/users/../../x",
            "/a/%2e/b",
            "/.hidden",
            "/users/.index.html.tmp-1-2",
            "/a%5c..%5cb",
            "/a%00b",
            "/%ff",
        ] {
            assert_eq!(segments(bad), None, "{bad}");
        }
    }

    #[test]
    fn gzip_negotiation() {
        let check = |value: &str, expected: bool| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
            assert_eq!(accepts_gzip(&h), expected, "{value}");
        };
        check("gzip", true);
        check("gzip, deflate, br", true);
        check("br;q=1.0, gzip;q=0.8", true);
        check("gzip;q=0", false);
        check("identity", false);
        check("*", true);
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
