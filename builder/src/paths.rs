//! Names (usernames, language names) to path segments and URLs.
//!
//! The scheme, one path segment per name, identical on disk and in URLs
//! (after the usual percent-encoding of non-ASCII bytes in URLs):
//!
//! - ASCII letters, digits, `-` and `_` are kept;
//! - `.` is kept except as the first character (so no segment is `.`, `..`
//!   or a hidden file);
//! - non-ASCII letters and digits (`char::is_alphanumeric`) are kept, so
//!   `Ñandú` stays readable;
//! - every other character becomes `~XX` per UTF-8 byte, upper-case hex:
//!   `C/C++` → `C~2FC~2B~2B`, `..` → `~2E.`, `a b` → `a~20b`, `~` → `~7E`;
//! - the empty name is `~`;
//! - a segment longer than [`MAX_SEGMENT_BYTES`] is cut (at a character or
//!   escape boundary) and ends with `~~` and 16 hex digits of the name's
//!   SHA-256, which no uncut segment contains.
//!
//! The mapping is injective (a `~` in a segment is always an escape), and a
//! segment never contains `/`, `\`, `%`, NUL or a control character, so no
//! name can reach outside the directory it is joined to.

use std::fmt::Write as _;
use std::path::PathBuf;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use sha2::{Digest, Sha256};

use crate::model::Period;

/// Longest segment written, in bytes (file systems allow 255; `.json` and
/// temporary-file affixes need room).
pub const MAX_SEGMENT_BYTES: usize = 160;

/// Folder of the profile pages.
pub const USERS_DIR: &str = "users";
/// Folder of the language pages.
pub const LANGUAGES_DIR: &str = "languages";
/// Folder of the read-API JSON files.
pub const API_USERS_DIR: &str = "api/users";
/// Folder of the coding-time JSON files.
pub const API_CODING_DIR: &str = "api/coding";
/// Folder of the static assets.
pub const STATIC_DIR: &str = "static";
/// Folder of the leaderboards: `leaderboards/PERIOD/` for the overall
/// boards, `leaderboards/PERIOD/languages/LANG/` for one language's.
pub const LEADERBOARDS_DIR: &str = "leaderboards";
/// Folder of a period's language boards, inside the period's folder.
pub const BOARD_LANGUAGES_DIR: &str = "languages";

/// Files of a profile that READMEs embed, inside its folder: the level
/// badge, the year grid and the shields.io endpoint document.
pub const BADGE_SVG: &str = "badge.svg";
pub const YEAR_SVG: &str = "year.svg";
pub const SHIELDS_JSON: &str = "shields.json";

/// Characters escaped in a URL: everything a segment holds except the
/// unreserved ASCII set. Only non-ASCII bytes are ever hit.
const URL_ESCAPED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/');

fn kept(c: char, first: bool) -> bool {
    c.is_ascii_alphanumeric()
        || c == '-'
        || c == '_'
        || (c == '.' && !first)
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// The path segment for `name` (see the module documentation).
pub fn segment(name: &str) -> String {
    if name.is_empty() {
        return "~".to_owned();
    }
    // tokens: a kept character or one escape for a whole character
    let mut tokens: Vec<String> = Vec::with_capacity(name.len());
    for (i, c) in name.char_indices() {
        if kept(c, i == 0) {
            tokens.push(c.to_string());
        } else {
            let mut token = String::new();
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                let _ = write!(token, "~{b:02X}");
            }
            tokens.push(token);
        }
    }
    let total: usize = tokens.iter().map(String::len).sum();
    if total <= MAX_SEGMENT_BYTES {
        return tokens.concat();
    }
    let hash = Sha256::digest(name.as_bytes());
    let suffix = format!("~~{}", &hex16(&hash));
    let mut out = String::with_capacity(MAX_SEGMENT_BYTES);
    for token in &tokens {
        if out.len() + token.len() + suffix.len() > MAX_SEGMENT_BYTES {
            break;
        }
        out.push_str(token);
    }
    out.push_str(&suffix);
    out
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The name `segment` made `segment` from; `None` for a cut segment (its
/// name is not all there) or anything `segment` does not make.
pub fn name_of_segment(segment: &str) -> Option<String> {
    if segment.contains("~~") {
        return None;
    }
    if segment == "~" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'~' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// `segment(name)` as it appears in a URL (non-ASCII bytes percent-encoded).
pub fn url_segment(name: &str) -> String {
    utf8_percent_encode(&segment(name), URL_ESCAPED).to_string()
}

/// URL of a user's profile page, e.g. `/users/alice/`.
pub fn user_url(username: &str) -> String {
    format!("/{USERS_DIR}/{}/", url_segment(username))
}

/// URL of a language's page, e.g. `/languages/C~2FC~2B~2B/`.
pub fn language_url(language: &str) -> String {
    format!("/{LANGUAGES_DIR}/{}/", url_segment(language))
}

/// URL of a user's read-API JSON, e.g. `/api/users/alice.json`. Keyed by the
/// lower-cased name (usernames are unique case-insensitively) so the serve
/// router can answer `/api/users/ALICE` like Code::Stats does.
pub fn api_user_url(username: &str) -> String {
    format!(
        "/{API_USERS_DIR}/{}.json",
        url_segment(&username.to_lowercase())
    )
}

/// URL of a user's coding-time JSON, e.g. `/api/coding/alice.json`.
pub fn api_coding_url(username: &str) -> String {
    format!(
        "/{API_CODING_DIR}/{}.json",
        url_segment(&username.to_lowercase())
    )
}

/// URL of a leaderboard's page, e.g. `/leaderboards/week/` or
/// `/leaderboards/week/languages/C~2FC~2B~2B/`.
pub fn leaderboard_url(period: Period, language: Option<&str>) -> String {
    match language {
        None => format!("/{LEADERBOARDS_DIR}/{}/", period.slug()),
        Some(l) => format!(
            "/{LEADERBOARDS_DIR}/{}/{BOARD_LANGUAGES_DIR}/{}/",
            period.slug(),
            url_segment(l)
        ),
    }
}

/// Folder of a leaderboard's page and JSON, relative to the output
/// directory.
pub fn leaderboard_dir(period: Period, language: Option<&str>) -> PathBuf {
    let dir = PathBuf::from(LEADERBOARDS_DIR).join(period.slug());
    match language {
        None => dir,
        Some(l) => dir.join(BOARD_LANGUAGES_DIR).join(segment(l)),
    }
}

/// Folder of a user's pages, relative to the output directory.
pub fn user_dir(username: &str) -> PathBuf {
    PathBuf::from(USERS_DIR).join(segment(username))
}

/// Folder of a language's pages, relative to the output directory.
pub fn language_dir(language: &str) -> PathBuf {
    PathBuf::from(LANGUAGES_DIR).join(segment(language))
}

/// A user's read-API JSON file, relative to the output directory.
pub fn api_user_file(username: &str) -> PathBuf {
    PathBuf::from(API_USERS_DIR).join(format!("{}.json", segment(&username.to_lowercase())))
}

/// A user's coding-time document (`GET /api/users/NAME/coding-time`),
/// apart from the read-API document, whose keys clients parse strictly.
pub fn api_coding_file(username: &str) -> PathBuf {
    PathBuf::from(API_CODING_DIR).join(format!("{}.json", segment(&username.to_lowercase())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::Component;

    fn check(name: &str, expected: &str) {
        assert_eq!(segment(name), expected, "segment of {name:?}");
    }

    #[test]
    fn segments() {
        check("alice", "alice");
        check("Alice_B-2", "Alice_B-2");
        check("C/C++", "C~2FC~2B~2B");
        check("C#", "C~23");
        check("Vue.js", "Vue.js");
        check(".", "~2E");
        check("..", "~2E.");
        check("../../etc", "~2E.~2F..~2Fetc");
        check("a/b", "a~2Fb");
        check("%2e%2e", "~252e~252e");
        check("a b", "a~20b");
        check("~", "~7E");
        check("", "~");
        check("Ñandú", "Ñandú");
        check("日本語", "日本語");
        check("a\\b", "a~5Cb");
        check("a\0b", "a~00b");
        check("<script>", "~3Cscript~3E");
        check("x\u{202e}y", "x~E2~80~AEy");
    }

    #[test]
    fn segments_are_single_normal_components() {
        for name in [
            "..",
            ".",
            "../../etc",
            "a/b",
            "/",
            "//",
            "%2e%2e",
            "\\",
            "~",
            "",
            " ",
            "C/C++",
        ] {
            let seg = segment(name);
            let path = PathBuf::from(&seg);
            let components: Vec<_> = path.components().collect();
            assert_eq!(components.len(), 1, "{name:?} → {seg:?}");
            assert!(matches!(components[0], Component::Normal(_)), "{name:?}");
            assert!(!seg.contains(['/', '\\', '%', '\0']), "{name:?}");
            assert!(!seg.starts_with('.'), "{name:?}");
        }
    }

    #[test]
    fn segments_are_unique() {
        let names = [
            "a",
            "A",
            "a b",
            "a~20b",
            "a~b",
            "a%20b",
            "..",
            "~2E.",
            ".",
            "~2E",
            "~",
            "",
            "~7E",
            "C/C++",
            "C~2FC~2B~2B",
        ];
        let segs: HashSet<String> = names.iter().map(|n| segment(n)).collect();
        assert_eq!(segs.len(), names.len());
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "ü/".repeat(100);
        let seg = segment(&long);
        assert!(seg.len() <= MAX_SEGMENT_BYTES, "{}", seg.len());
        assert!(seg.contains("~~"));
        let other = format!("{long}x");
        assert_ne!(segment(&other), seg);
        // 64 four-byte characters, the longest username, also fit
        assert!(segment(&"😀".repeat(64)).len() <= MAX_SEGMENT_BYTES);
    }

    #[test]
    fn urls() {
        assert_eq!(user_url("alice"), "/users/alice/");
        assert_eq!(user_url("Ñandú"), "/users/%C3%91and%C3%BA/");
        assert_eq!(language_url("C/C++"), "/languages/C~2FC~2B~2B/");
        assert_eq!(api_user_url("Alice"), "/api/users/alice.json");
        assert_eq!(
            api_user_file("Alice"),
            PathBuf::from("api/users/alice.json")
        );
        assert_eq!(user_dir(".."), PathBuf::from("users/~2E."));
        assert_eq!(leaderboard_url(Period::Week, None), "/leaderboards/week/");
        assert_eq!(
            leaderboard_url(Period::All, Some("C/C++")),
            "/leaderboards/all/languages/C~2FC~2B~2B/"
        );
        assert_eq!(
            leaderboard_dir(Period::Month, Some("..")),
            PathBuf::from("leaderboards/month/languages/~2E.")
        );
        assert_eq!(
            leaderboard_dir(Period::Year, None),
            PathBuf::from("leaderboards/year")
        );
    }
}
