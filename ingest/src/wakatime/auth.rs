//! The API key of a WakaTime request, in every way clients send it:
//! `Authorization: Basic base64(key)` (the key alone, or `user:key`),
//! `Authorization: Bearer key` (or base64 of it), or `?api_key=key` (the handler's query).

use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// The key candidates of a request, most specific first. The caller takes
/// the first one that is a known token. Empty when none was sent, or when
/// more than one `Authorization` header was.
pub fn candidates(headers: &HeaderMap, api_key: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    match (auth.next(), auth.next()) {
        (Some(value), None) => {
            if let Ok(value) = value.to_str() {
                from_authorization(value.trim(), &mut out);
            }
        }
        (Some(_), Some(_)) => return Vec::new(),
        _ => {}
    }
    if let Some(key) = api_key {
        out.push(key.trim().to_owned());
    }
    out.retain(|k| !k.is_empty());
    out
}

fn from_authorization(value: &str, out: &mut Vec<String>) {
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return;
    };
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        if let Some(decoded) = decode(credentials) {
            // `key`, or `user:key` / `key:` as some clients spell it.
            match decoded.split_once(':') {
                None => out.push(decoded),
                Some((a, b)) => {
                    out.push(b.to_owned());
                    out.push(a.to_owned());
                }
            }
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        out.push(credentials.to_owned());
        if let Some(decoded) = decode(credentials) {
            out.push(decoded);
        }
    }
}

fn decode(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .ok()?;
    String::from_utf8(bytes).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const KEY: &str = "0b7c4e8a-4bd3-4f0e-9a6e-2f1d3c5b7a90";

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn every_spelling() {
        for (headers, query) in [
            (with_auth(&format!("Basic {}", b64(KEY))), None),
            (
                with_auth(&format!("basic {}", b64(&format!("{KEY}:")))),
                None,
            ),
            (
                with_auth(&format!("Basic {}", b64(&format!("me:{KEY}")))),
                None,
            ),
            (with_auth(&format!("Bearer {KEY}")), None),
            (with_auth(&format!("Bearer {}", b64(KEY))), None),
            (HeaderMap::new(), Some(KEY.to_owned())),
            (HeaderMap::new(), Some(format!("waka_{KEY}"))),
        ] {
            let found = candidates(&headers, query.as_deref());
            assert!(
                found.iter().any(|k| k.trim_start_matches("waka_") == KEY),
                "{headers:?} {query:?}: {found:?}"
            );
        }
        assert!(candidates(&with_auth("Basic !!!"), None).is_empty());
        assert!(candidates(&with_auth("Digest abc"), None).is_empty());
        let mut two = with_auth(&format!("Bearer {KEY}"));
        two.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(candidates(&two, None).is_empty());
    }
}
