//! The serve router over a built fixture site, with tower's `oneshot`.

mod common;

use std::fs;
use std::io::Read as _;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use builder::serve;
use common::*;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

struct Site {
    tmp: tempfile::TempDir,
    out: std::path::PathBuf,
    router: axum::Router,
}

fn site() -> Site {
    let (tmp, out, _) = build(&fixture());
    // a file beside the output directory that must never be served
    fs::write(tmp.path().join("secret.txt"), "TOP SECRET").unwrap();
    let router = serve::router(&out);
    Site { tmp, out, router }
}

async fn send(router: &axum::Router, req: Request<Body>) -> (Response, Vec<u8>) {
    let response = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

async fn get(router: &axum::Router, uri: &str) -> (Response, Vec<u8>) {
    send(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// A GET as a browser sends it, accepting HTML.
async fn browse(router: &axum::Router, uri: &str) -> (Response, Vec<u8>) {
    let request = Request::get(uri)
        .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
        .body(Body::empty())
        .unwrap();
    send(router, request).await
}

fn header(r: &Response, name: header::HeaderName) -> &str {
    r.headers()
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn content_types_and_cache_control() {
    let s = site();
    for (uri, content_type, cache) in [
        ("/", "text/html; charset=utf-8", serve::CACHE_PAGES),
        (
            "/index.html",
            "text/html; charset=utf-8",
            serve::CACHE_PAGES,
        ),
        (
            "/users/alice/",
            "text/html; charset=utf-8",
            serve::CACHE_PAGES,
        ),
        (
            "/users/alice",
            "text/html; charset=utf-8",
            serve::CACHE_PAGES,
        ),
        (
            "/users/%C3%91and%C3%BA/",
            "text/html; charset=utf-8",
            serve::CACHE_PAGES,
        ),
        (
            "/languages/C~2FC~2B~2B/",
            "text/html; charset=utf-8",
            serve::CACHE_PAGES,
        ),
        (
            "/users/alice/hours.svg",
            "image/svg+xml",
            serve::CACHE_PAGES,
        ),
        // what READMEs embed: image proxies may keep it five minutes
        (
            "/users/alice/badge.svg",
            "image/svg+xml",
            serve::CACHE_EMBEDS,
        ),
        (
            "/users/alice/year.svg",
            "image/svg+xml",
            serve::CACHE_EMBEDS,
        ),
        (
            "/users/alice/shields.json",
            "application/json",
            serve::CACHE_EMBEDS,
        ),
        (
            "/users/%C3%91and%C3%BA/badge.svg",
            "image/svg+xml",
            serve::CACHE_EMBEDS,
        ),
        (
            "/leaderboards/week/",
            "text/html; charset=utf-8",
            serve::CACHE_PAGES,
        ),
        (
            "/leaderboards/week/index.json",
            "application/json",
            serve::CACHE_PAGES,
        ),
        (
            "/static/style.css",
            "text/css; charset=utf-8",
            serve::CACHE_STATIC,
        ),
        (
            "/static/favicon.svg?v=123",
            "image/svg+xml",
            serve::CACHE_STATIC,
        ),
    ] {
        let (r, body) = get(&s.router, uri).await;
        assert_eq!(r.status(), StatusCode::OK, "{uri}");
        assert_eq!(header(&r, header::CONTENT_TYPE), content_type, "{uri}");
        assert_eq!(header(&r, header::CACHE_CONTROL), cache, "{uri}");
        assert_eq!(
            header(&r, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{uri}"
        );
        assert!(header(&r, header::ETAG).starts_with('"'), "{uri}");
        assert!(!body.is_empty(), "{uri}");
        assert_eq!(
            header(&r, header::CONTENT_LENGTH),
            body.len().to_string(),
            "{uri}"
        );
    }
    let (_, body) = get(&s.router, "/").await;
    assert_eq!(body, fs::read(s.out.join("index.html")).unwrap());
}

#[tokio::test]
async fn etag_answers_304() {
    let s = site();
    let (r, _) = get(&s.router, "/users/alice/").await;
    let etag = header(&r, header::ETAG).to_owned();
    let req = |tag: &str| {
        Request::get("/users/alice/")
            .header(header::IF_NONE_MATCH, tag)
            .body(Body::empty())
            .unwrap()
    };
    let (r, body) = send(&s.router, req(&etag)).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(header(&r, header::ETAG), etag);
    let (r, _) = send(&s.router, req(&format!("\"other\", W/{etag}"))).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let (r, body) = send(&s.router, req("\"other\"")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!body.is_empty());
}

#[tokio::test]
async fn a_rebuilt_file_gets_a_new_etag() {
    let s = site();
    let (r, _) = get(&s.router, "/users/alice/").await;
    let before = header(&r, header::ETAG).to_owned();
    let mut site = fixture();
    site.profiles[0].total_xp += 1;
    builder(&s.out).build(&site).unwrap();
    let (r, body) = get(&s.router, "/users/alice/").await;
    assert_ne!(header(&r, header::ETAG), before);
    assert!(String::from_utf8(body).unwrap().contains("1,384,895"));
}

#[tokio::test]
async fn gzip_when_accepted() {
    let s = site();
    let req = Request::get("/users/alice/")
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .body(Body::empty())
        .unwrap();
    let (r, body) = send(&s.router, req).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header(&r, header::VARY), "accept-encoding");
    assert!(header(&r, header::ETAG).ends_with("-gz\""));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(
        plain,
        fs::read(s.out.join("users/alice/index.html")).unwrap()
    );
    // the gzip tag revalidates too
    let req = Request::get("/users/alice/")
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::IF_NONE_MATCH, header(&r, header::ETAG))
        .body(Body::empty())
        .unwrap();
    let (r, _) = send(&s.router, req).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // not without Accept-Encoding
    let (r, _) = get(&s.router, "/users/alice/").await;
    assert_eq!(header(&r, header::CONTENT_ENCODING), "");
}

#[tokio::test]
async fn misses_answer_the_404_page() {
    let s = site();
    for uri in [
        "/nope",
        "/users/nobody/",
        "/users/alice/nope.svg",
        "/static/",
    ] {
        let (r, body) = browse(&s.router, uri).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(body, fs::read(s.out.join("404.html")).unwrap(), "{uri}");
        // A client that does not take HTML (a plugin, curl) gets the API's
        // JSON error.
        let (r, body) = get(&s.router, uri).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(header(&r, header::CONTENT_TYPE), "application/json");
        assert_eq!(body, br#"{"error":"not found"}"#, "{uri}");
    }
}

#[tokio::test]
async fn no_path_traversal() {
    let s = site();
    let _keep = &s.tmp;
    for uri in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/users/..%2f..%2fsecret.txt",
        "/users/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/%252e%252e/secret.txt",
        "/../Cargo.toml",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/.%2e/secret.txt",
        "/users/alice/.index.html.tmp-1-1",
    ] {
        let (r, body) = get(&s.router, uri).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("TOP SECRET"), "{uri}");
        assert!(!text.contains("[package]"), "{uri}");
    }
}

#[tokio::test]
async fn the_read_api_is_not_answered_here() {
    // `/api/users/NAME` belongs to ingest's read API, which decides who is
    // public; this router never serves those documents, however spelled.
    let s = site();
    assert!(s.out.join("api/users/alice.json").is_file());
    for uri in [
        "/api/users/alice.json",
        "/api/users/alice.json/",
        "//api/users/alice.json",
        "/%61pi/users/alice.json",
        "/api/users/%61lice.json",
        "/api/users/alice",
    ] {
        let (r, body) = browse(&s.router, uri).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body, br#"{"error":"User not found or private."}"#, "{uri}");
    }
    let (r, body) = browse(&s.router, "/api/nope").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body, br#"{"error":"not found"}"#);
}

#[tokio::test]
async fn head_and_other_methods() {
    let s = site();
    let (r, body) = send(&s.router, Request::head("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        header(&r, header::CONTENT_LENGTH),
        fs::metadata(s.out.join("index.html"))
            .unwrap()
            .len()
            .to_string()
    );
    let (r, _) = send(
        &s.router,
        Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&r, header::ALLOW), "GET, HEAD");
    // Paths a plugin may mistype: every answer is a JSON error.
    for (method, uri) in [
        (Method::POST, "/api/my//pulses"),
        (Method::POST, "/API/MY/PULSES"),
        (Method::PUT, "/users/alice/"),
        (Method::DELETE, "/nope"),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Body::from("{}"))
            .unwrap();
        let (r, body) = send(&s.router, request).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(header(&r, header::CONTENT_TYPE), "application/json");
        assert_eq!(body, br#"{"error":"method not allowed"}"#, "{method} {uri}");
    }
}
