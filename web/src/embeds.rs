//! What stands in front of the static site in `serve`
//! ([`site_gate`]):
//!
//! - **Who is public, now.** A request under `/users/NAME/` for a user who
//!   is not public this moment (ingest's `visibility`, changed at once by
//!   this process and reloaded from ClickHouse every 2 s) is answered as a
//!   miss (the site's 404), though the next rollup has not removed the
//!   pages yet. So a badge or chart embedded elsewhere stops showing a
//!   user made private by the CLI or another node within the reload, not
//!   at the next rollup.
//! - **One language's badge.** `/users/NAME/badge.svg?language=L` and
//!   `/users/NAME/shields.json?language=L` are drawn per request from the
//!   user's published read-API document (kept in memory by ingest), with
//!   the builder's own badge functions: the same numbers as the profile
//!   page, from the same rollup. `L` is matched case-insensitively after
//!   the language aliases (`?language=js` is JavaScript's badge); a public
//!   user with no XP in `L` gets a level-0 badge, so an embed never breaks.
//!   Without `language` the pre-rendered files answer.

use crate::WebState;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use builder::{
    badge, paths,
    serve::{CACHE_EMBEDS, content_tag, not_modified},
};
use serde::Deserialize;
use std::collections::HashMap;

/// Longest `language` value looked at; longer is no language (names are
/// at most `sql::names::MAX_LANGUAGE_CHARS` characters).
pub const MAX_LANGUAGE_QUERY_BYTES: usize = 1024;

/// Where a request for a hidden user's files is sent: a segment starting
/// with `.` is a miss for the site router, whatever exists on disk.
const MISS: &str = "/users/.hidden";

/// The middleware (see the module documentation). Mount it on the site's
/// router only.
pub async fn site_gate(State(web): State<WebState>, request: Request, next: Next) -> Response {
    let Some((name, file)) = user_path(request.uri().path()) else {
        return next.run(request).await;
    };
    let Some((_, username)) = web.ingest.visibility.public_user(&name) else {
        let mut request = request;
        *request.uri_mut() = Uri::from_static(MISS);
        return next.run(request).await;
    };
    let per_language = matches!(file.as_str(), paths::BADGE_SVG | paths::SHIELDS_JSON)
        && matches!(*request.method(), Method::GET | Method::HEAD);
    if per_language && let Some(language) = language_query(request.uri()) {
        let head = request.method() == Method::HEAD;
        if let Some(response) =
            language_badge(&web, &username, &file, &language, request.headers(), head).await
        {
            return response;
        }
    }
    next.run(request).await
}

/// `/users/SEGMENT/FILE` → (the user's name, `FILE`); `None` for any other
/// path, or a segment that cannot be read back (a cut one: the pages
/// answer as they are).
fn user_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(&format!("/{}/", paths::USERS_DIR))?;
    let (segment, file) = rest.split_once('/').unwrap_or((rest, ""));
    let segment = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    Some((paths::name_of_segment(&segment)?, file.to_owned()))
}

#[derive(Deserialize)]
struct LanguageQuery {
    language: Option<String>,
}

fn language_query(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    if query.len() > MAX_LANGUAGE_QUERY_BYTES * 3 {
        return None;
    }
    let parsed: LanguageQuery = serde_urlencoded::from_str(query).ok()?;
    parsed
        .language
        .filter(|l| !l.trim().is_empty() && l.len() <= MAX_LANGUAGE_QUERY_BYTES)
}

/// The read API document's part a badge needs.
#[derive(Deserialize)]
struct Document {
    languages: HashMap<String, LanguageXps>,
}

#[derive(Deserialize)]
struct LanguageXps {
    xps: u64,
}

/// One language's badge or shields document for `username`; `None` when
/// no rollup has published the user yet (the site then answers).
async fn language_badge(
    web: &WebState,
    username: &str,
    file: &str,
    language: &str,
    headers: &HeaderMap,
    head: bool,
) -> Option<Response> {
    let (body, _) = web.ingest.read_api.published(username).await?;
    let doc: Document = serde_json::from_slice(&body).ok()?;
    let aliases = web.ingest.shown_names.get();
    let wanted = sql::names::fold(aliases.canonical(language.trim()));
    let (label, xp) = doc
        .languages
        .iter()
        .find(|(name, _)| sql::names::fold(name) == wanted)
        .map(|(name, l)| (name.clone(), l.xps))
        .unwrap_or_else(|| (aliases.canonical(language.trim()).to_owned(), 0));
    let (content, content_type) = if file == paths::SHIELDS_JSON {
        (badge::shields_json(&label, xp), "application/json")
    } else {
        (badge::level_badge(&label, xp), "image/svg+xml")
    };
    Some(answer(content, content_type, headers, head))
}

/// `content` with an ETag of its own (304 when the client has it) and the
/// embeds' cache policy.
fn answer(
    content: String,
    content_type: &'static str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let tag = content_tag(content.as_bytes());
    let etag = format!("\"{tag}\"");
    let fresh = not_modified(headers, &tag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if head {
        Body::empty().into_response()
    } else {
        Body::from(content).into_response()
    };
    let h = response.headers_mut();
    if !fresh {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_EMBEDS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_paths() {
        assert_eq!(
            user_path("/users/alice/badge.svg"),
            Some(("alice".into(), "badge.svg".into()))
        );
        assert_eq!(
            user_path("/users/alice/"),
            Some(("alice".into(), "".into()))
        );
        assert_eq!(user_path("/users/alice"), Some(("alice".into(), "".into())));
        assert_eq!(
            user_path("/users/%C3%91and%C3%BA/year.svg"),
            Some(("Ñandú".into(), "year.svg".into()))
        );
        assert_eq!(user_path("/languages/Rust/"), None);
    }

    #[test]
    fn language_queries() {
        let q = |s: &str| language_query(&s.parse::<Uri>().unwrap());
        assert_eq!(q("/x?language=Rust").as_deref(), Some("Rust"));
        assert_eq!(q("/x?language=C%2B%2B").as_deref(), Some("C++"));
        assert_eq!(
            q("/x?language=TypeScript+React").as_deref(),
            Some("TypeScript React")
        );
        assert_eq!(q("/x?language="), None);
        assert_eq!(q("/x?other=1"), None);
        assert_eq!(q("/x"), None);
    }
}
