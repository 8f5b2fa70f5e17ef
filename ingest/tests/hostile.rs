//! A hostile-request corpus against `POST /api/my/pulses` on a real server
//! over the real ClickHouse, with the site mounted behind the API as
//! `codestats serve` does: over a thousand requests, generated from a fixed
//! seed plus hand-written ones, each with the status README.md documents for
//! it.
//!
//! Every answer is checked: the expected status, `{"error": "..."}` for every
//! non-2xx, never a 5xx; at the end the XP stored equals exactly the XP of
//! the pulses answered 201.
//!
//! Requests reqwest refuses to send (bytes no header may hold, two
//! `Content-Length`s, a body shorter than declared, trickled bytes) go over a
//! raw TCP socket. A few requests are not HTTP/1.1 that hyper can parse;
//! hyper answers those itself, before any route, with an empty body
//! ([`Expect::Protocol`]): a malformed request line, header name or value
//! (NUL, control bytes, a space in a name, a line without a colon),
//! conflicting or unreadable `Content-Length`s, a `Transfer-Encoding` other
//! than `chunked`, and a request head over hyper's size limits or a length
//! it cannot represent (431). They are never 5xx either.

mod common;

use common::TestApp;
use futures::StreamExt;
use ingest::{
    limits::{MAX_BODY_BYTES, MAX_PULSE_AGE, MAX_XP_PER_ITEM, MAX_XPS_PER_PULSE},
    pulse::{
        INVALID_CODED_AT, INVALID_DATE, INVALID_OFFSET, INVALID_XP, INVALID_XPS, TOO_MANY_XPS,
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};
use sql::test_db;
use std::time::{Duration, Instant};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The corpus is the same on every run.
const SEED: u64 = 0x00c0_de57_a75e;
/// Generated requests, on top of the hand-written ones.
const GENERATED: usize = 1_000;
/// Requests under way at once.
const CONCURRENCY: usize = 16;
/// Longest any answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an answer that depends on the headers alone may take.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Message of every 403.
const UNAUTHENTICATED: &str = "You must be authenticated";
const WEEK: i64 = MAX_PULSE_AGE.as_secs() as i64;

/// What the server must answer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// `201 {"ok":"Great success!"}`; the pulse's XP is stored.
    Created,
    /// This status with a JSON `{"error": ...}` body, holding this message
    /// when one is given.
    Error(u16, Option<&'static str>),
    /// hyper's own answer to a request that is not HTTP/1.1 it can parse:
    /// this status, any body.
    Protocol(u16),
}

use Expect::{Created, Error, Protocol};

fn bad(message: &'static str) -> Expect {
    Error(400, Some(message))
}

const FORBIDDEN: Expect = Error(403, Some(UNAUTHENTICATED));
const TOO_LARGE: Expect = Error(413, None);
/// A path nothing serves, asked with GET.
const NOT_FOUND: Expect = Error(404, None);
/// A path asked with a method it does not serve (any POST outside the API).
const NOT_ALLOWED: Expect = Error(405, None);

enum Body {
    Full(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
}

enum Request {
    /// Sent with reqwest.
    Client {
        method: &'static str,
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Body,
    },
    /// Written to a TCP socket as is: in pieces of `piece` bytes `pause`
    /// apart when given, then the answer is awaited for `timeout`.
    Raw {
        bytes: Vec<u8>,
        trickle: Option<(usize, Duration)>,
        timeout: Duration,
    },
}

impl Request {
    /// Whether `body` is sent whole in one piece.
    fn carries(&self, body: &[u8]) -> bool {
        let bytes = match self {
            Request::Client {
                body: Body::Full(bytes),
                ..
            }
            | Request::Raw { bytes, .. } => bytes,
            Request::Client { .. } => return false,
        };
        bytes.windows(body.len()).any(|w| w == body)
    }
}

struct Case {
    name: String,
    request: Request,
    expect: Expect,
    /// The pulse's XP: stored if answered 201.
    xp: u64,
}

struct Answer {
    status: u16,
    /// (lower-case name, value)
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

// ---------------------------------------------------------------- pulses

/// Language names a plugin may send, odd ones included; all valid.
const LANGUAGES: &[&str] = &[
    "Rust",
    "rust",
    "RUST",
    "C++",
    "C#",
    "Plain text",
    "",
    "   ",
    " Elixir ",
    "日本語",
    "x\u{202e}y",
    "\u{1f600}",
    "a\u{0}b",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "a/b",
    "Ünïcødé",
    "\u{1b}[31mred",
    "\u{fffe}\u{ffff}",
    "'; DROP TABLE pulses; --",
    "%s%n",
    "\\",
    "null",
];

struct Tokens {
    good: String,
    deactivated: String,
}

/// `secs_ago` seconds before now, in local time at `offset_minutes`,
/// written as `form` says: `:` (`+HH:MM`), `` (`+HHMM`) or `Z` (UTC only).
fn stamp(secs_ago: i64, offset_minutes: i32, form: &str) -> String {
    let zone = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
    let local = (chrono::Utc::now() - chrono::Duration::seconds(secs_ago)).with_timezone(&zone);
    let base = local.format("%Y-%m-%dT%H:%M:%S");
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let (h, m) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
    match form {
        "Z" if offset_minutes == 0 => format!("{base}Z"),
        "" => format!("{base}{sign}{h:02}{m:02}"),
        _ => format!("{base}{sign}{h:02}:{m:02}"),
    }
}

fn random_stamp(rng: &mut StdRng) -> String {
    let age = rng.random_range(0..WEEK - 3600);
    let offset = if rng.random_bool(0.2) {
        *[0, 840, -840, 330, -570].choose(rng).unwrap()
    } else {
        rng.random_range(-840..=840)
    };
    let form = *[":", "", "Z"].choose(rng).unwrap();
    let mut text = stamp(age, offset, form);
    if rng.random_bool(0.1) {
        // a fraction of a second
        text.insert_str(19, ".123456");
    }
    text
}

fn random_items(rng: &mut StdRng, count: usize) -> Vec<(String, u64)> {
    (0..count)
        .map(|_| {
            let language = (*LANGUAGES.choose(rng).unwrap()).to_owned();
            let xp = match rng.random_range(0..10) {
                0 => 0,
                1 => MAX_XP_PER_ITEM,
                _ => rng.random_range(1..=500),
            };
            (language, xp)
        })
        .collect()
}

fn item_json(language: &str, xp: u64) -> String {
    format!(r#"{{"language":{},"xp":{xp}}}"#, json!(language))
}

/// A pulse body from raw JSON texts of its `coded_at` and items.
fn pulse_text(coded_at: &str, items: &[String]) -> String {
    format!(r#"{{"coded_at":{coded_at},"xps":[{}]}}"#, items.join(","))
}

fn valid_text(coded_at: &str, items: &[(String, u64)]) -> String {
    let items: Vec<String> = items.iter().map(|(l, x)| item_json(l, *x)).collect();
    pulse_text(&json!(coded_at).to_string(), &items)
}

fn total(items: &[(String, u64)]) -> u64 {
    items.iter().map(|(_, xp)| xp).sum()
}

// ---------------------------------------------------------------- requests

fn post(token: &str, body: impl Into<Vec<u8>>) -> Request {
    Request::Client {
        method: "POST",
        path: "/api/my/pulses".into(),
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-api-token", token.into()),
        ],
        body: Body::Full(body.into()),
    }
}

/// A raw HTTP/1.1 POST: `headers` as given, then `Content-Length` unless
/// one is given, then `body`.
fn raw_post(path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut bytes =
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n").into_bytes();
    let mut has_length = false;
    for (name, value) in headers {
        has_length |= name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding");
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(b"\r\n");
    }
    if !has_length {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    bytes
}

fn raw(bytes: Vec<u8>) -> Request {
    Request::Raw {
        bytes,
        trickle: None,
        timeout: ANSWER_TIMEOUT,
    }
}

fn chunked(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

impl Case {
    fn new(name: impl Into<String>, request: Request, expect: Expect) -> Self {
        Self {
            name: name.into(),
            request,
            expect,
            xp: 0,
        }
    }

    /// A pulse worth `xp`, stored when answered 201.
    fn worth(mut self, xp: u64) -> Self {
        self.xp = xp;
        self
    }
}

// ---------------------------------------------------------------- the corpus

/// Values of the wrong type for any field, as JSON text.
const WRONG_VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    r#""x""#,
    r#""""#,
    "[]",
    "{}",
    "[1]",
    r#"{"a":1}"#,
    "18446744073709551615",
    "1e3",
    r#"["2024-01-01T00:00:00Z"]"#,
];

/// XP values out of range or not integers, as JSON text (all valid JSON).
const BAD_XP: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "-1",
    "-9223372036854775808",
    "-9223372036854775809",
    "100001",
    "1e5",
    "100000.0",
    "1.0",
    "0.5",
    "1E2",
    "-0.0",
    "1e-400",
];

/// Numbers that are not JSON, or that serde_json cannot hold (`1e400`
/// overflows a double): the body is not JSON.
const NOT_JSON_NUMBERS: &[&str] = &[
    "1e400", "-1e400", "0x10", "+1", "01", "Infinity", "NaN", "1.", ".5", "1e",
];

/// Bytes that are never UTF-8.
const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xfe",
    b"\xc3",
    b"\x80",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
];

fn generated(rng: &mut StdRng, tokens: &Tokens) -> Vec<Case> {
    let token = tokens.good.as_str();
    let mut cases = Vec::with_capacity(GENERATED);
    for i in 0..GENERATED {
        let coded_at = random_stamp(rng);
        let count = rng.random_range(1..=8);
        let items = random_items(rng, count);
        let valid = valid_text(&coded_at, &items);
        let xp = total(&items);
        let case = match rng.random_range(0..16) {
            0..=2 => Case::new("valid", post(token, valid), Created).worth(xp),
            3 => {
                // unknown fields, nested junk, whitespace
                let depth = rng.random_range(1..=100);
                let junk = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                let body = format!(
                    " \n{{\"editor\":\"vim\",\"junk\":{junk},\
                     \"coded_at\":{},\"xps\":[{}],\"xp\":-1}}\t\n",
                    json!(coded_at),
                    items
                        .iter()
                        .map(|(l, x)| format!(
                            r#"{{"language":{},"xp":{x},"extra":{{"a":[null]}}}}"#,
                            json!(l)
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                Case::new("valid with unknown fields", post(token, body), Created).worth(xp)
            }
            4 => {
                let cut = rng.random_range(0..valid.len());
                let mut body = valid.into_bytes();
                body.truncate(cut);
                Case::new(
                    format!("truncated at {cut}"),
                    post(token, body),
                    bad(INVALID_XPS),
                )
            }
            5 => {
                let (what, body) = match rng.random_range(0..9) {
                    0 => (
                        "trailing garbage",
                        format!(
                            "{valid}{}",
                            ["x", "}", ",", "{}", "[]", "\"\""].choose(rng).unwrap()
                        ),
                    ),
                    1 => ("no closing brace", valid[..valid.len() - 1].to_owned()),
                    2 => ("= for :", valid.replacen(':', "=", 1)),
                    3 => (
                        "trailing comma",
                        format!("{},}}", &valid[..valid.len() - 1]),
                    ),
                    4 => ("single quotes", valid.replacen('"', "'", 1)),
                    5 => (
                        "unquoted key",
                        valid.replacen("\"coded_at\"", "coded_at", 1),
                    ),
                    6 => ("comment", format!("/* pulse */{valid}")),
                    7 => ("byte order mark", format!("\u{feff}{valid}")),
                    _ => ("two documents", format!("{valid}{valid}")),
                };
                Case::new(
                    format!("malformed: {what}"),
                    post(token, body),
                    bad(INVALID_XPS),
                )
            }
            6 => {
                let wrong = *WRONG_VALUES.choose(rng).unwrap();
                let item = item_json("Rust", 5);
                let stamp = json!(coded_at).to_string();
                let (field, body, expect) = match rng.random_range(0..6) {
                    0 => (
                        "coded_at",
                        pulse_text(wrong, &[item]),
                        bad(INVALID_CODED_AT),
                    ),
                    1 if !wrong.starts_with('[') => (
                        "xps",
                        format!(r#"{{"coded_at":{stamp},"xps":{wrong}}}"#),
                        bad(INVALID_XPS),
                    ),
                    2 => (
                        "item",
                        pulse_text(&stamp, &[item, wrong.into()]),
                        bad(INVALID_XP),
                    ),
                    3 if !wrong.starts_with('"') => (
                        "language",
                        pulse_text(&stamp, &[format!(r#"{{"language":{wrong},"xp":1}}"#)]),
                        bad(INVALID_XP),
                    ),
                    4 if wrong != "0" => (
                        "xp",
                        pulse_text(&stamp, &[format!(r#"{{"language":"Go","xp":{wrong}}}"#)]),
                        bad(INVALID_XP),
                    ),
                    _ => ("body", wrong.to_owned(), bad(INVALID_XPS)),
                };
                Case::new(format!("{field} is {wrong}"), post(token, body), expect)
            }
            7 => {
                let stamp = json!(coded_at).to_string();
                let (what, body, expect) = match rng.random_range(0..5) {
                    0 => ("no coded_at", r#"{"xps":[]}"#.to_owned(), bad(INVALID_XPS)),
                    1 => (
                        "no xps",
                        format!(r#"{{"coded_at":{stamp}}}"#),
                        bad(INVALID_XPS),
                    ),
                    2 => (
                        "no language",
                        pulse_text(&stamp, &[r#"{"xp":1}"#.into()]),
                        bad(INVALID_XP),
                    ),
                    3 => (
                        "no xp",
                        pulse_text(&stamp, &[r#"{"language":"Go"}"#.into()]),
                        bad(INVALID_XP),
                    ),
                    _ => ("empty object", "{}".to_owned(), bad(INVALID_XPS)),
                };
                Case::new(what, post(token, body), expect)
            }
            8 => {
                let stamp = json!(coded_at).to_string();
                if rng.random_bool(0.7) {
                    let number = *BAD_XP.choose(rng).unwrap();
                    let body =
                        pulse_text(&stamp, &[format!(r#"{{"language":"Go","xp":{number}}}"#)]);
                    Case::new(format!("xp {number}"), post(token, body), bad(INVALID_XP))
                } else {
                    let number = *NOT_JSON_NUMBERS.choose(rng).unwrap();
                    let body =
                        pulse_text(&stamp, &[format!(r#"{{"language":"Go","xp":{number}}}"#)]);
                    Case::new(
                        format!("xp {number} (not JSON)"),
                        post(token, body),
                        bad(INVALID_XPS),
                    )
                }
            }
            9 => {
                let bytes = *INVALID_UTF8.choose(rng).unwrap();
                let text = valid.as_bytes();
                // inside the first language name, or inside coded_at
                let at = if rng.random_bool(0.5) {
                    valid.find("\"language\":\"").map(|i| i + 12).unwrap_or(2)
                } else {
                    15
                };
                let body = [&text[..at], bytes, &text[at..]].concat();
                Case::new(
                    format!("invalid UTF-8 {bytes:x?} at {at}"),
                    post(token, body),
                    bad(INVALID_XPS),
                )
            }
            10 => {
                let stamp = json!(coded_at).to_string();
                let (what, body, expect, xp) = match rng.random_range(0..6) {
                    0 => (
                        "raw NUL in a name",
                        pulse_text(&stamp, &["{\"language\":\"a\0b\",\"xp\":1}".into()])
                            .into_bytes(),
                        bad(INVALID_XPS),
                        0,
                    ),
                    1 => (
                        "escaped NUL in a name",
                        pulse_text(&stamp, &[r#"{"language":"a\u0000b","xp":7}"#.into()])
                            .into_bytes(),
                        Created,
                        7,
                    ),
                    2 => (
                        "NUL after the body",
                        [valid.as_bytes(), b"\0"].concat(),
                        bad(INVALID_XPS),
                        0,
                    ),
                    3 => (
                        "NUL before the body",
                        [b"\0", valid.as_bytes()].concat(),
                        bad(INVALID_XPS),
                        0,
                    ),
                    4 => (
                        "NUL after the offset",
                        pulse_text(&format!("\"{coded_at}\\u0000\""), &[item_json("Go", 1)])
                            .into_bytes(),
                        bad(INVALID_OFFSET),
                        0,
                    ),
                    _ => (
                        "escaped lone surrogate",
                        pulse_text(&stamp, &[r#"{"language":"a\ud800b","xp":1}"#.into()])
                            .into_bytes(),
                        bad(INVALID_XPS),
                        0,
                    ),
                };
                Case::new(what, post(token, body), expect).worth(xp)
            }
            11 => {
                // Opened and closed, 30,000 levels stay under the body limit.
                let depth = rng.random_range(129..=30_000);
                let stamp = json!(coded_at).to_string();
                let (what, body, expect) = match rng.random_range(0..5) {
                    0 => ("unclosed [", "[".repeat(2 * depth), bad(INVALID_XPS)),
                    1 => (
                        "nested xps",
                        format!(
                            r#"{{"coded_at":{stamp},"xps":{}{}}}"#,
                            "[".repeat(depth),
                            "]".repeat(depth)
                        ),
                        bad(INVALID_XPS),
                    ),
                    2 => (
                        "nested objects",
                        format!(
                            "{}1{}",
                            r#"{"a":"#.repeat(depth.min(10_000)),
                            "}".repeat(depth.min(10_000))
                        ),
                        bad(INVALID_XPS),
                    ),
                    3 => {
                        let d = rng.random_range(1..=100);
                        (
                            "nested item",
                            pulse_text(&stamp, &[format!("{}{}", "[".repeat(d), "]".repeat(d))]),
                            bad(INVALID_XP),
                        )
                    }
                    _ => (
                        "nested coded_at",
                        pulse_text(
                            &format!("{}{stamp}{}", "[".repeat(depth), "]".repeat(depth)),
                            &[],
                        ),
                        bad(INVALID_XPS),
                    ),
                };
                Case::new(
                    format!("deep nesting: {what}, depth {depth}"),
                    post(token, body),
                    expect,
                )
            }
            12 => {
                let count = if rng.random_bool(0.3) {
                    MAX_XPS_PER_PULSE
                } else {
                    rng.random_range(MAX_XPS_PER_PULSE + 1..=3 * MAX_XPS_PER_PULSE)
                };
                let items = random_items(rng, count);
                let body = valid_text(&coded_at, &items);
                if count <= MAX_XPS_PER_PULSE {
                    Case::new(format!("{count} items"), post(token, body), Created)
                        .worth(total(&items))
                } else {
                    Case::new(
                        format!("{count} items"),
                        post(token, body),
                        bad(TOO_MANY_XPS),
                    )
                    .worth(total(&items))
                }
            }
            13 => {
                let (what, language, expect) = match rng.random_range(0..5) {
                    0 => ("255 characters", "λ".repeat(255), Created),
                    1 => (
                        "255 characters padded",
                        format!("  {}\t", "ü".repeat(255)),
                        Created,
                    ),
                    2 => ("256 characters", "x".repeat(256), bad(INVALID_XP)),
                    3 => (
                        "a long name",
                        "😀".repeat(rng.random_range(256..5_000)),
                        bad(INVALID_XP),
                    ),
                    _ => ("white space only", " \t\n ".to_owned(), Created),
                };
                let body = valid_text(&coded_at, &[(language, 3)]);
                let xp = if expect == Created { 3 } else { 0 };
                Case::new(format!("language of {what}"), post(token, body), expect).worth(xp)
            }
            14 => {
                let (what, value, expect) = match rng.random_range(0..8) {
                    0 => (
                        "unknown",
                        format!("{:064x}", rng.random::<u128>()),
                        FORBIDDEN,
                    ),
                    1 => ("empty", String::new(), FORBIDDEN),
                    2 => ("deactivated", tokens.deactivated.clone(), FORBIDDEN),
                    3 => (
                        "with a space inside",
                        format!("{} {}", &token[..4], &token[4..]),
                        FORBIDDEN,
                    ),
                    4 => ("prefixed Bearer", format!("Bearer {token}"), FORBIDDEN),
                    5 => ("8 KiB", "t".repeat(8192), FORBIDDEN),
                    6 => ("cut short", token[..token.len() - 1].to_owned(), FORBIDDEN),
                    _ => ("with blanks around", format!(" \t{token} "), Created),
                };
                Case::new(format!("token {what}"), post(&value, valid), expect).worth(xp)
            }
            _ => {
                let size = rng.random_range(MAX_BODY_BYTES + 1..=2 * MAX_BODY_BYTES);
                let mut body = valid.into_bytes();
                body.resize(size, b' ');
                if rng.random_bool(0.5) {
                    Case::new(format!("{size}-byte body"), post(token, body), TOO_LARGE).worth(xp)
                } else {
                    let chunks = body.chunks(8192).map(<[u8]>::to_vec).collect();
                    let request = Request::Client {
                        method: "POST",
                        path: "/api/my/pulses".into(),
                        headers: vec![("x-api-token", token.into())],
                        body: Body::Chunked(chunks),
                    };
                    Case::new(format!("{size}-byte chunked body"), request, TOO_LARGE).worth(xp)
                }
            }
        };
        cases.push(Case {
            name: format!("#{i} {}", case.name),
            ..case
        });
    }
    cases
}

/// The boundaries of `coded_at`: age, offsets, forms and impossible dates.
fn dates(tokens: &Tokens) -> Vec<Case> {
    let token = tokens.good.as_str();
    let now = chrono::Utc::now();
    let yesterday = (now - chrono::Duration::days(1)).format("%Y-%m-%d");
    let recent = stamp(3600, 0, "Z");
    let recent_local = &recent[..19];
    let texts: Vec<(String, Expect)> = vec![
        // Older than 7 days by a second: refused whenever it arrives. The
        // exact boundary is pinned by the parser's own tests, which fix "now".
        (stamp(WEEK + 1, 0, "Z"), bad(INVALID_DATE)),
        (stamp(WEEK + 1, 840, ":"), bad(INVALID_DATE)),
        (stamp(WEEK + 1, -840, ":"), bad(INVALID_DATE)),
        // Five minutes inside the week: accepted even on a slow run.
        (stamp(WEEK - 300, 0, "Z"), Created),
        (stamp(WEEK - 300, -840, ":"), Created),
        ("1970-01-01T00:00:00Z".into(), bad(INVALID_DATE)),
        ("0000-01-01T00:00:00Z".into(), bad(INVALID_DATE)),
        ("2016-04-24T01:43:56+12:00".into(), bad(INVALID_DATE)),
        // The future becomes now.
        ("9999-12-31T23:59:59Z".into(), Created),
        ("9999-12-31T23:59:59-14:00".into(), Created),
        ("2100-01-01T00:00:00+14:00".into(), Created),
        (stamp(-86_400, 0, "Z"), Created),
        // A leap second (RFC 3339 allows 60).
        (format!("{yesterday}T23:59:60Z"), Created),
        // Offsets
        (stamp(60, 840, ":"), Created),
        (stamp(60, -840, ":"), Created),
        (stamp(60, 840, ""), Created),
        (stamp(60, -840, ""), Created),
        (stamp(60, 0, "Z"), Created),
        (stamp(60, 0, "Z").replace('Z', "z"), Created),
        (stamp(60, 0, ":").replace('+', "-"), Created),
        (stamp(60, 330, ":"), Created),
        (stamp(60, -570, ""), Created),
        (format!("{} ", stamp(60, 60, ":")), Created),
        (stamp(60, 60, ":").replace('T', "t"), Created),
        (stamp(60, 60, ":").replace('T', " "), Created),
        (format!("{recent_local}.999999999Z"), Created),
        (format!("{recent_local}+14:01"), bad(INVALID_OFFSET)),
        (format!("{recent_local}-14:01"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+1401"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+15:00"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+24:00"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+00:60"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+99:99"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+14"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+5"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+05:3"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+05:30:00"), bad(INVALID_OFFSET)),
        (format!("{recent_local} +01:00"), bad(INVALID_OFFSET)),
        (format!("{recent_local}UTC"), bad(INVALID_OFFSET)),
        (format!("{recent_local}GMT+1"), bad(INVALID_OFFSET)),
        (format!("{recent_local}ZZ"), bad(INVALID_OFFSET)),
        (format!("{recent_local}+٠١:٠٠"), bad(INVALID_OFFSET)),
        (recent_local.to_owned(), bad(INVALID_OFFSET)),
        // Not a date
        (format!("{recent_local}.Z"), bad(INVALID_CODED_AT)),
        (recent[..10].to_owned(), bad(INVALID_CODED_AT)),
        ("yesterday".into(), bad(INVALID_CODED_AT)),
        (String::new(), bad(INVALID_CODED_AT)),
        ("1700000000".into(), bad(INVALID_CODED_AT)),
        ("2024-02-30T12:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2023-02-29T12:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-13-01T12:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-00-10T12:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-06-00T12:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-06-10T24:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-06-10T12:60:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-06-10T12:00:61Z".into(), bad(INVALID_CODED_AT)),
        ("10000-01-01T00:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-W01-1T00:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("２０２４-06-10T12:00:00Z".into(), bad(INVALID_CODED_AT)),
        ("2024-06-10T12:00:00€".into(), bad(INVALID_OFFSET)),
    ];
    texts
        .into_iter()
        .map(|(text, expect)| {
            let body = valid_text(&text, &[("Go".into(), 11)]);
            Case::new(format!("coded_at {text:?}"), post(token, body), expect).worth(11)
        })
        .collect()
}

/// Sizes, paths, methods, headers and framing, written by hand.
fn by_hand(tokens: &Tokens) -> Vec<Case> {
    let token = tokens.good.as_str();
    let tb = token.as_bytes();
    let body = valid_text(&stamp(120, 0, "Z"), &[("Go".into(), 9)]);
    let b = body.as_bytes();
    let len = body.len().to_string();
    let lb = len.as_bytes();
    let exactly = |size: usize| {
        let mut padded = body.clone().into_bytes();
        padded.resize(size, b' ');
        padded
    };
    let json_type: (&str, &[u8]) = ("Content-Type", b"application/json");
    let with_token = |path: &str, extra: &[(&str, &[u8])], body: &[u8]| {
        let mut headers: Vec<(&str, &[u8])> = vec![("X-API-Token", tb), json_type];
        headers.extend_from_slice(extra);
        raw(raw_post(path, &headers, body))
    };
    let client =
        |method: &'static str, path: &str, headers: Vec<(&'static str, String)>| Request::Client {
            method,
            path: path.into(),
            headers,
            body: Body::Full(body.clone().into_bytes()),
        };
    let token_header = || vec![("x-api-token", token.to_owned())];

    let dot_dot =
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    let lower_case_method = format!(
        "post /api/my/pulses HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         X-API-Token: {token}\r\nContent-Length: {len}\r\n\r\n{body}"
    )
    .into_bytes();
    let http_1_0 = format!(
        "POST /api/my/pulses HTTP/1.0\r\nX-API-Token: {token}\r\n\
         Content-Length: {len}\r\n\r\n{body}"
    )
    .into_bytes();
    let bare_lf = format!(
        "POST /api/my/pulses HTTP/1.1\nHost: x\nConnection: close\n\
         X-API-Token: {token}\nContent-Length: {len}\n\n{body}"
    )
    .into_bytes();
    let space_in_path =
        format!("POST /api/my/pul ses HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n{body}")
            .into_bytes();
    let no_colon =
        b"POST /api/my/pulses HTTP/1.1\r\nHost: x\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}"
            .to_vec();
    let extensions = [
        format!("{:x};ext=1\r\n", b.len()).as_bytes(),
        b,
        b"\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ]
    .concat();
    let mut cases = vec![
        // Sizes
        Case::new(
            "64 KiB exactly",
            post(token, exactly(MAX_BODY_BYTES)),
            Created,
        )
        .worth(9),
        Case::new(
            "64 KiB + 1",
            post(token, exactly(MAX_BODY_BYTES + 1)),
            TOO_LARGE,
        ),
        Case::new("100,000 [", post(token, "[".repeat(100_000)), TOO_LARGE),
        Case::new(
            "64 KiB + 1 without a token",
            raw(raw_post(
                "/api/my/pulses",
                &[],
                &exactly(MAX_BODY_BYTES + 1),
            )),
            Error(413, None),
        )
        .worth(0),
        Case::new(
            "64 KiB exactly, chunked",
            Request::Client {
                method: "POST",
                path: "/api/my/pulses".into(),
                headers: token_header(),
                body: Body::Chunked(
                    exactly(MAX_BODY_BYTES)
                        .chunks(1000)
                        .map(<[u8]>::to_vec)
                        .collect(),
                ),
            },
            Created,
        )
        .worth(9),
        Case::new("empty body", post(token, ""), bad(INVALID_XPS)),
        // A declared length over the limit is refused from the header alone.
        Case::new(
            "Content-Length 70000, 2 bytes sent",
            Request::Raw {
                bytes: raw_post(
                    "/api/my/pulses",
                    &[("X-API-Token", tb), ("Content-Length", b"70000")],
                    b"{}",
                ),
                trickle: None,
                timeout: PROMPT_TIMEOUT,
            },
            TOO_LARGE,
        ),
        Case::new(
            "Content-Length 10^18, nothing sent",
            Request::Raw {
                bytes: raw_post(
                    "/api/my/pulses",
                    &[
                        ("X-API-Token", tb),
                        ("Content-Length", b"1000000000000000000"),
                    ],
                    b"",
                ),
                trickle: None,
                timeout: PROMPT_TIMEOUT,
            },
            TOO_LARGE,
        ),
        // A length hyper cannot represent (its decoder reserves the top
        // values) is refused by hyper as too large.
        Case::new(
            "Content-Length u64::MAX, nothing sent",
            Request::Raw {
                bytes: raw_post(
                    "/api/my/pulses",
                    &[
                        ("X-API-Token", tb),
                        ("Content-Length", b"18446744073709551615"),
                    ],
                    b"",
                ),
                trickle: None,
                timeout: PROMPT_TIMEOUT,
            },
            Protocol(431),
        ),
        Case::new(
            "Content-Length 1 GB with Expect: 100-continue",
            Request::Raw {
                bytes: raw_post(
                    "/api/my/pulses",
                    &[
                        ("X-API-Token", tb),
                        ("Expect", b"100-continue"),
                        ("Content-Length", b"1000000000"),
                    ],
                    b"",
                ),
                trickle: None,
                timeout: PROMPT_TIMEOUT,
            },
            TOO_LARGE,
        ),
        Case::new(
            "Content-Length 70000 without a token",
            Request::Raw {
                bytes: raw_post("/api/my/pulses", &[("Content-Length", b"70000")], b"{}"),
                trickle: None,
                timeout: PROMPT_TIMEOUT,
            },
            TOO_LARGE,
        ),
        // Paths and methods: past the API's routes is the site, which
        // serves GET and HEAD only.
        Case::new(
            "trailing slash",
            client("POST", "/api/my/pulses/", token_header()),
            Created,
        )
        .worth(9),
        Case::new(
            "query string",
            client("POST", "/api/my/pulses?x=1&coded_at=0", token_header()),
            Created,
        )
        .worth(9),
        Case::new(
            "//",
            client("POST", "/api/my//pulses", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "upper case path",
            client("POST", "/API/MY/PULSES", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "extra segment",
            client("POST", "/api/my/pulses/x", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "singular",
            client("POST", "/api/my/pulse", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "encoded slash",
            client("POST", "/api/my%2Fpulses", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "dot segments",
            with_token("/api/my/pulses/../pulses", &[], b),
            NOT_ALLOWED,
        ),
        Case::new(
            "GET an unknown path",
            client("GET", "/api/my//pulses", token_header()),
            NOT_FOUND,
        ),
        Case::new("GET a dot-dot path", raw(dot_dot), NOT_FOUND),
        Case::new("root", client("POST", "/", token_header()), NOT_ALLOWED),
        Case::new(
            "absolute-form target",
            with_token("http://localhost/api/my/pulses", &[], b),
            Created,
        )
        .worth(9),
        Case::new(
            "GET",
            client("GET", "/api/my/pulses", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "PUT",
            client("PUT", "/api/my/pulses", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "DELETE",
            client("DELETE", "/api/my/pulses", token_header()),
            NOT_ALLOWED,
        ),
        Case::new(
            "PATCH",
            client("PATCH", "/api/my/pulses", token_header()),
            NOT_ALLOWED,
        ),
        Case::new("lower-case method", raw(lower_case_method), NOT_ALLOWED),
        // Content types do not matter: plugins differ.
        Case::new(
            "text/plain",
            client(
                "POST",
                "/api/my/pulses",
                vec![
                    ("x-api-token", token.into()),
                    ("content-type", "text/plain".into()),
                ],
            ),
            Created,
        )
        .worth(9),
        Case::new(
            "no content type",
            client("POST", "/api/my/pulses", token_header()),
            Created,
        )
        .worth(9),
        // Tokens
        Case::new(
            "no token",
            client("POST", "/api/my/pulses", vec![]),
            FORBIDDEN,
        ),
        Case::new(
            "token twice",
            with_token("/api/my/pulses", &[("X-API-Token", tb)], b),
            FORBIDDEN,
        ),
        Case::new(
            "a good and an unknown token",
            with_token("/api/my/pulses", &[("x-api-token", b"nope")], b),
            FORBIDDEN,
        ),
        Case::new(
            "token with a byte over 0x7f",
            raw(raw_post(
                "/api/my/pulses",
                &[("X-API-Token", &[tb, b"\xff"].concat())],
                b,
            )),
            FORBIDDEN,
        ),
        Case::new(
            "token in Authorization",
            client(
                "POST",
                "/api/my/pulses",
                vec![("authorization", format!("Bearer {token}"))],
            ),
            FORBIDDEN,
        ),
        Case::new(
            "token in the query",
            client("POST", &format!("/api/my/pulses?token={token}"), vec![]),
            FORBIDDEN,
        ),
        Case::new(
            "lower-case token header name",
            raw(raw_post("/api/my/pulses", &[("x-api-token", tb)], b)),
            Created,
        )
        .worth(9),
        // Framing
        Case::new(
            "two equal Content-Lengths",
            with_token(
                "/api/my/pulses",
                &[("Content-Length", lb), ("Content-Length", lb)],
                b,
            ),
            Created,
        )
        .worth(9),
        Case::new(
            "chunked",
            with_token(
                "/api/my/pulses",
                &[("Transfer-Encoding", b"chunked")],
                &chunked(&[&b[..10], &b[10..]]),
            ),
            Created,
        )
        .worth(9),
        Case::new(
            "chunked with extensions and trailers",
            with_token(
                "/api/my/pulses",
                &[("Transfer-Encoding", b"chunked")],
                &extensions,
            ),
            Created,
        )
        .worth(9),
        Case::new(
            "chunked, bad chunk size",
            with_token(
                "/api/my/pulses",
                &[("Transfer-Encoding", b"chunked")],
                b"zz\r\n{}\r\n0\r\n\r\n",
            ),
            Error(400, None),
        ),
        Case::new("HTTP/1.0 without Host", raw(http_1_0), Created).worth(9),
        Case::new("bare LF line ends", raw(bare_lf), Created).worth(9),
        // hyper's own answers
        Case::new(
            "two different Content-Lengths",
            with_token(
                "/api/my/pulses",
                &[("Content-Length", lb), ("Content-Length", b"1")],
                b,
            ),
            Protocol(400),
        ),
        Case::new(
            "Content-Length not a number",
            with_token("/api/my/pulses", &[("Content-Length", b"abc")], b),
            Protocol(400),
        ),
        Case::new(
            "negative Content-Length",
            with_token("/api/my/pulses", &[("Content-Length", b"-1")], b),
            Protocol(400),
        ),
        Case::new(
            "Content-Length over u64",
            with_token(
                "/api/my/pulses",
                &[("Content-Length", b"18446744073709551616")],
                b,
            ),
            Protocol(400),
        ),
        // Both framings: hyper reads the chunks and ignores the length (RFC 9112, 6.3).
        Case::new(
            "Transfer-Encoding and Content-Length",
            with_token(
                "/api/my/pulses",
                &[("Transfer-Encoding", b"chunked"), ("Content-Length", lb)],
                &chunked(&[b]),
            ),
            Created,
        ),
        Case::new(
            "Transfer-Encoding gzip",
            with_token("/api/my/pulses", &[("Transfer-Encoding", b"gzip")], b),
            Protocol(400),
        ),
        Case::new(
            "garbage request line",
            raw(b"GARBAGE\r\n\r\n".to_vec()),
            Protocol(400),
        ),
        Case::new("space in the path", raw(space_in_path), Protocol(400)),
        Case::new(
            "NUL in a header value",
            with_token("/api/my/pulses", &[("X-Note", b"a\0b")], b),
            Protocol(400),
        ),
        Case::new(
            "NUL in the token",
            raw(raw_post(
                "/api/my/pulses",
                &[("X-API-Token", &[&tb[..8], b"\0", &tb[8..]].concat())],
                b,
            )),
            Protocol(400),
        ),
        Case::new(
            "control byte in a header value",
            with_token("/api/my/pulses", &[("X-Note", b"a\x01b")], b),
            Protocol(400),
        ),
        Case::new(
            "space in a header name",
            with_token("/api/my/pulses", &[("X API Token", tb)], b),
            Protocol(400),
        ),
        Case::new("header without a colon", raw(no_colon), Protocol(400)),
        Case::new(
            "obsolete line folding",
            with_token("/api/my/pulses", &[("X-Note", b"a\r\n b")], b),
            Protocol(400),
        ),
        Case::new(
            "200 headers",
            raw(raw_post(
                "/api/my/pulses",
                &vec![("X-Pad", b"x".as_slice()); 200],
                b,
            )),
            Protocol(431),
        ),
        Case::new(
            "2 MB header",
            with_token("/api/my/pulses", &[("X-Pad", &vec![b'x'; 2_000_000])], b),
            Protocol(431),
        ),
    ];
    for case in &mut cases {
        if case.xp == 0 && case.request.carries(b) {
            case.xp = 9;
        }
    }
    // Slow but within every timeout: accepted.
    for (i, (piece, pause)) in [(4, 20), (16, 50), (1, 5)].into_iter().enumerate() {
        cases.push(
            Case::new(
                format!("trickled body #{i}: {piece} bytes every {pause} ms"),
                Request::Raw {
                    bytes: raw_post("/api/my/pulses", &[("X-API-Token", tb)], b),
                    trickle: Some((piece, Duration::from_millis(pause))),
                    timeout: ANSWER_TIMEOUT,
                },
                Created,
            )
            .worth(9),
        );
    }
    cases
}

// ---------------------------------------------------------------- sending

async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    request: &Request,
) -> Result<Answer, String> {
    match request {
        Request::Client {
            method,
            path,
            headers,
            body,
        } => {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut builder = client
                .request(method, app.url(path))
                .timeout(ANSWER_TIMEOUT);
            for (name, value) in headers {
                builder = builder.header(*name, value);
            }
            builder = match body {
                Body::Full(bytes) => builder.body(bytes.clone()),
                Body::Chunked(chunks) => {
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                        chunks.iter().cloned().map(Ok).collect();
                    builder.body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
                }
            };
            let response = builder.send().await.map_err(|e| format!("{e:?}"))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("{e:?}"))?
                .to_vec();
            Ok(Answer {
                status,
                headers,
                body,
            })
        }
        Request::Raw {
            bytes,
            trickle,
            timeout,
        } => raw_exchange(app, bytes, *trickle, *timeout).await,
    }
}

/// Writes `bytes` (trickled when asked), then reads one response.
async fn raw_exchange(
    app: &TestApp,
    bytes: &[u8],
    trickle: Option<(usize, Duration)>,
    timeout: Duration,
) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(app.addr)
        .await
        .map_err(|e| e.to_string())?;
    // A server may answer before reading everything (413 from the header):
    // a failed write is not a failure, the answer is what counts.
    match trickle {
        None => {
            let _ = stream.write_all(bytes).await;
        }
        Some((piece, pause)) => {
            for chunk in bytes.chunks(piece) {
                if stream.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        if let Some(answer) = parse_response(&buf, false) {
            return Ok(answer);
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => {
                return Err(format!(
                    "no answer within {timeout:?} (got {} bytes)",
                    buf.len()
                ));
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return parse_response(&buf, true).ok_or_else(|| {
                    format!("connection closed after {} bytes of answer", buf.len())
                });
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One HTTP/1.1 response from `buf`, skipping `100 Continue`; `None` while
/// incomplete (at `eof`, a body without a length ends there).
fn parse_response(buf: &[u8], eof: bool) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let rest = &buf[end + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    if status == 100 {
        return parse_response(rest, eof);
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(length) = header("content-length") {
        let length: usize = length.parse().ok()?;
        rest.get(..length)?.to_vec()
    } else if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16)
                    .ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break body;
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// What is wrong with `answer` for `case`, if anything.
fn check(case: &Case, answer: &Result<Answer, String>) -> Option<String> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => return Some(format!("no answer: {e}")),
    };
    let status = answer.status;
    let body = String::from_utf8_lossy(&answer.body);
    if status >= 500 {
        return Some(format!("{status} {body}"));
    }
    let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let header = |name: &str| {
        answer
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    match case.expect {
        Created => (status != 201 || json != Some(json!({"ok": "Great success!"})))
            .then(|| format!("expected 201, got {status} {body}")),
        Protocol(expected) => (status != expected)
            .then(|| format!("expected {expected} (hyper), got {status} {body}")),
        Error(expected, message) => {
            if status != expected {
                return Some(format!("expected {expected}, got {status} {body}"));
            }
            let error = json
                .as_ref()
                .and_then(|j| j.get("error"))
                .and_then(Value::as_str);
            let Some(error) = error else {
                return Some(format!("{status} without a JSON error: {body:?}"));
            };
            if !header("content-type").is_some_and(|t| t.starts_with("application/json")) {
                return Some(format!("{status} JSON error without a JSON content type"));
            }
            if let Some(message) = message
                && error != message
            {
                return Some(format!("expected {message:?}, got {error:?}"));
            }
            if status == 429 && header("retry-after").is_none() {
                return Some("429 without Retry-After".into());
            }
            None
        }
    }
}

// ---------------------------------------------------------------- the test

#[tokio::test]
async fn hostile_requests_get_their_documented_answers() {
    let db = test_db!();
    let site = tempfile::tempdir().unwrap();
    let app = TestApp::with_site(
        db.clone(),
        |config| {
            // The corpus is one token's burst: not throttled here.
            config.rate_per_minute = 1_000_000;
            config.rate_burst = 1_000_000;
        },
        site.path(),
    )
    .await;
    let good = app.machine("mallory", "laptop", false).await;
    let deactivated = app.machine("mallory", "old", false).await;
    sql::accounts::set_machine_active(&app.db, "mallory", "old", false)
        .await
        .unwrap();
    app.app.tokens.refresh(&app.db).await.unwrap();
    let tokens = Tokens { good, deactivated };

    let mut rng = StdRng::seed_from_u64(SEED);
    let mut cases = generated(&mut rng, &tokens);
    cases.extend(dates(&tokens));
    cases.extend(by_hand(&tokens));
    assert!(cases.len() >= 1_000, "{} cases", cases.len());

    // A connection per request: a refused request may close its connection.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let outcomes: Vec<(usize, Result<Answer, String>)> =
        futures::stream::iter(cases.iter().enumerate())
            .map(|(i, case)| {
                let (app, client) = (&app, &client);
                async move { (i, send(app, client, &case.request).await) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;

    let mut failures = Vec::new();
    let mut acknowledged = 0u64;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for (i, outcome) in &outcomes {
        let case = &cases[*i];
        if let Ok(answer) = outcome {
            *statuses.entry(answer.status).or_default() += 1;
            if answer.status == 201 {
                acknowledged += case.xp;
            }
        }
        if let Some(problem) = check(case, outcome) {
            failures.push(format!("{}: {problem}", case.name));
        }
    }

    // A low-limit token on a second server over the same database: the
    // rate is checked after the token, before the body.
    let limited = TestApp::with_config(db.clone(), |config| {
        config.rate_per_minute = 1;
        config.rate_burst = 1;
    })
    .await;
    let slow_token = limited.machine("throttled", "m", false).await;
    let pulse = valid_text(&stamp(60, 0, "Z"), &[("Go".into(), 5)]);
    let throttled = [
        Case::new(
            "first pulse of a limited token",
            post(&slow_token, pulse.clone()),
            Created,
        )
        .worth(5),
        Case::new(
            "second pulse at once",
            post(&slow_token, pulse.clone()),
            Error(429, None),
        )
        .worth(5),
        Case::new(
            "bad body over the rate",
            post(&slow_token, "nope"),
            Error(429, None),
        ),
        Case::new("no token over the rate", post("", pulse.clone()), FORBIDDEN).worth(5),
        Case::new(
            "third pulse at once",
            post(&slow_token, pulse),
            Error(429, None),
        )
        .worth(5),
    ];
    for case in &throttled {
        let outcome = send(&limited, &client, &case.request).await;
        if let Ok(answer) = &outcome {
            *statuses.entry(answer.status).or_default() += 1;
            if answer.status == 201 {
                acknowledged += case.xp;
            }
        }
        if let Some(problem) = check(case, &outcome) {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    println!(
        "{} requests in {:?}: {statuses:?}",
        cases.len() + throttled.len(),
        started.elapsed()
    );

    // Still serving.
    let health = app.get("/healthz").await;
    assert_eq!(health.status, reqwest::StatusCode::OK, "{:?}", health.body);

    // 201 means durable: what was acknowledged is in ClickHouse, and
    // nothing else (both apps write to the same database).
    limited.flush().await;
    let (stored, _) = app.stored().await;
    if stored != acknowledged {
        failures.push(format!("stored {stored} XP, acknowledged {acknowledged}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + throttled.len(),
        failures.join("\n")
    );
}
