//! Rules for the names people choose: usernames, machine names, language
//! names, and the database name codestats is configured with.

use crate::error::{Error, Result};

/// Longest username, in characters (Code::Stats' limit).
pub const MAX_USERNAME_CHARS: usize = 64;
/// Characters a username may not contain (Code::Stats' rule: they break URLs).
pub const USERNAME_FORBIDDEN: [char; 7] = ['/', '#', '%', '?', '&', '=', '+'];
/// Longest machine name, in characters.
pub const MAX_MACHINE_CHARS: usize = 64;
/// Longest language name, in characters, after trimming.
pub const MAX_LANGUAGE_CHARS: usize = 255;
/// What an empty language name is stored as.
pub const PLAIN_TEXT: &str = "Plain text";

/// Unicode's format characters (category Cf): invisible, or reordering the
/// text around them (zero-width spaces and joiners, bidi controls, the BOM,
/// tags). A username holding one could look exactly like another's.
pub const FORMAT_CHARACTERS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0020}', '\u{E007F}'),
];

/// Whether `c` is a format character ([`FORMAT_CHARACTERS`]).
pub fn is_format(c: char) -> bool {
    FORMAT_CHARACTERS
        .iter()
        .any(|(first, last)| (*first..=*last).contains(&c))
}

pub fn validate_username(name: &str) -> Result<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_USERNAME_CHARS {
        return Err(Error::Invalid(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters, got {chars}"
        )));
    }
    if let Some(c) = name.chars().find(|c| USERNAME_FORBIDDEN.contains(c)) {
        return Err(Error::Invalid(format!(
            "username may not contain {c:?} (none of / # % ? & = +)"
        )));
    }
    if name.trim() != name {
        return Err(Error::Invalid(
            "username may not start or end with white space".into(),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "username may not contain control characters".into(),
        ));
    }
    if name.chars().any(is_format) {
        return Err(Error::Invalid(
            "username may not contain invisible or bidi formatting characters".into(),
        ));
    }
    Ok(())
}

pub fn validate_machine_name(name: &str) -> Result<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_MACHINE_CHARS {
        return Err(Error::Invalid(format!(
            "machine name must be 1 to {MAX_MACHINE_CHARS} characters, got {chars}"
        )));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "machine name may not start or end with white space or contain control characters"
                .into(),
        ));
    }
    Ok(())
}

/// The key names are unique by: usernames and language names are unique
/// case-insensitively.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// A language name as stored: trimmed, empty meaning plain text. `None` when
/// too long.
pub fn normalize_language(name: &str) -> Option<&str> {
    let name = name.trim();
    if name.is_empty() {
        Some(PLAIN_TEXT)
    } else if name.chars().count() > MAX_LANGUAGE_CHARS {
        None
    } else {
        Some(name)
    }
}

/// Database names are written into DDL as identifiers: keep them plain.
pub fn validate_database(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "database name {name:?} must be letters, digits and _ (not starting with a digit)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_user(name: &str, ok: bool) {
        assert_eq!(validate_username(name).is_ok(), ok, "{name:?}");
    }

    #[test]
    fn usernames() {
        for good in [
            "a",
            "Nicd",
            "ünïcødé",
            "with space",
            "dots.are.fine",
            "<script>",
            &"x".repeat(64),
        ] {
            check_user(good, true);
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a/b",
            "a#b",
            "50%",
            "what?",
            "a&b",
            "a=b",
            "a+b",
            " lead",
            "trail ",
            "tab\tin",
        ] {
            check_user(bad, false);
        }
        // 64 characters, more than 64 bytes
        check_user(&"é".repeat(64), true);
    }

    #[test]
    fn machine_names() {
        assert!(validate_machine_name("laptop").is_ok());
        assert!(validate_machine_name("my / weird # machine").is_ok());
        assert!(validate_machine_name("").is_err());
        assert!(validate_machine_name(&"m".repeat(65)).is_err());
    }

    #[test]
    fn languages() {
        assert_eq!(normalize_language("  Rust "), Some("Rust"));
        assert_eq!(normalize_language("   "), Some(PLAIN_TEXT));
        assert_eq!(
            normalize_language(&"l".repeat(255)).map(str::len),
            Some(255)
        );
        assert_eq!(normalize_language(&"l".repeat(256)), None);
    }

    #[test]
    fn databases() {
        assert!(validate_database("codestats").is_ok());
        assert!(validate_database("t_ingest_rejects_bad_json").is_ok());
        for bad in ["", "a-b", "a;DROP", "1abc", "a b"] {
            assert!(validate_database(bad).is_err(), "{bad}");
        }
    }
}
