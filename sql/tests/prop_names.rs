//! Property tests of the naming rules in `sql::names`: usernames, machine
//! names, language names and the case-insensitive key.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000 cargo test -p
//! sql --test prop_names` runs longer.

use proptest::prelude::*;
use sql::names::{
    MAX_LANGUAGE_CHARS, MAX_MACHINE_CHARS, MAX_USERNAME_CHARS, PLAIN_TEXT, USERNAME_FORBIDDEN,
    fold, is_format, normalize_language, validate_machine_name, validate_username,
};

/// Any character, weighted towards the ones the rules are about.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::sample::select(vec![
            '/', '#', '%', '?', '&', '=', '+', ' ', '\t', '\n', '\r', '\0', '\u{7f}', '\u{85}',
            '\u{a0}', '\u{2028}', '\u{3000}', '\u{202e}', '\u{feff}', '\u{200b}', '\u{2066}',
            '\u{e0041}', '\u{fffe}', 'ß', 'İ', 'Σ',
            'ς', 'K', '\u{212a}', 'ǅ', 'a', 'Z', '.', '~',
        ]),
        2 => prop::char::range('a', 'z'),
    ]
}

fn any_name(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 0..=max).prop_map(|c| c.into_iter().collect())
}

/// A character a valid username may hold anywhere.
fn username_char() -> impl Strategy<Value = char> {
    any_char().prop_map(|c| {
        if USERNAME_FORBIDDEN.contains(&c) || c.is_control() || is_format(c) {
            'x'
        } else {
            c
        }
    })
}

/// A character a name may start or end with.
fn edge_char() -> impl Strategy<Value = char> {
    username_char().prop_map(|c| if c.is_whitespace() { 'y' } else { c })
}

/// A valid username: 1 to 64 characters, none forbidden, no control
/// character, no white space at either end.
fn valid_username() -> impl Strategy<Value = String> {
    (
        edge_char(),
        prop::option::of((
            prop::collection::vec(username_char(), 0..=MAX_USERNAME_CHARS - 2),
            edge_char(),
        )),
    )
        .prop_map(|(first, rest)| {
            let mut name = String::from(first);
            if let Some((middle, last)) = rest {
                name.extend(middle);
                name.push(last);
            }
            name
        })
}

/// The documented rule, written out independently of the implementation.
fn username_rule(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_USERNAME_CHARS).contains(&chars)
        && !name.contains(USERNAME_FORBIDDEN)
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
        && !name.chars().any(char::is_control)
        && !name.chars().any(is_format)
}

fn machine_rule(name: &str) -> bool {
    let chars = name.chars().count();
    (1..=MAX_MACHINE_CHARS).contains(&chars)
        && !name.starts_with(char::is_whitespace)
        && !name.ends_with(char::is_whitespace)
        && !name.chars().any(char::is_control)
}

proptest! {
    #[test]
    fn usernames_follow_the_documented_rule(name in any_name(70)) {
        prop_assert_eq!(validate_username(&name).is_ok(), username_rule(&name), "{:?}", name);
    }

    #[test]
    fn valid_usernames_are_accepted(name in valid_username()) {
        prop_assert!(validate_username(&name).is_ok(), "{:?}", name);
        // Machine names are looser than usernames.
        prop_assert!(validate_machine_name(&name).is_ok(), "{:?}", name);
    }

    #[test]
    fn each_kind_of_invalid_username_is_refused(
        name in valid_username(),
        forbidden in prop::sample::select(USERNAME_FORBIDDEN.to_vec()),
        control in prop_oneof![prop::char::range('\0', '\u{1f}'), prop::char::range('\u{7f}', '\u{9f}')],
        space in prop_oneof![
            prop::sample::select(vec!['\t', '\n', '\u{b}', '\u{c}', '\r', ' ', '\u{85}', '\u{a0}',
                '\u{1680}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}']),
            prop::char::range('\u{2000}', '\u{200a}'),
        ],
        at in any::<prop::sample::Index>(),
    ) {
        prop_assert!(control.is_control() && space.is_whitespace());
        let chars: Vec<char> = name.chars().collect();
        let at = at.index(chars.len() + 1);
        let insert = |c: char| {
            let mut v = chars.clone();
            v.insert(at, c);
            v.into_iter().collect::<String>()
        };
        prop_assert!(validate_username(&insert(forbidden)).is_err());
        prop_assert!(validate_username(&insert(control)).is_err());
        for invisible in ['\u{200b}', '\u{202e}'] {
            let name = insert(invisible);
            prop_assert!(validate_username(&name).is_err(), "{:?}", name);
        }
        let leading = format!("{space}{name}");
        let trailing = format!("{name}{space}");
        prop_assert!(validate_username(&leading).is_err());
        prop_assert!(validate_username(&trailing).is_err());
        let long: String = name.chars().cycle().take(MAX_USERNAME_CHARS + 1).collect();
        prop_assert!(validate_username(&long).is_err());
        prop_assert!(validate_username("").is_err());
    }

    #[test]
    fn machine_names_follow_the_documented_rule(name in any_name(70)) {
        prop_assert_eq!(validate_machine_name(&name).is_ok(), machine_rule(&name), "{:?}", name);
    }

    #[test]
    fn fold_is_a_key(name in any_name(40), other in any_name(40)) {
        let key = fold(&name);
        // Folding twice changes nothing, and the key has no upper case left.
        prop_assert_eq!(fold(&key), key.clone());
        prop_assert!(!key.chars().any(|c| c.is_ascii_uppercase()));
        // ASCII case never tells two names apart.
        prop_assert_eq!(fold(&name.to_ascii_uppercase()), key.clone());
        prop_assert_eq!(fold(&name.to_ascii_lowercase()), key.clone());
        // Names that differ other than by ASCII case keep different keys
        // when both are ASCII.
        if name.is_ascii() && other.is_ascii() {
            prop_assert_eq!(key == fold(&other), name.eq_ignore_ascii_case(&other));
        }
    }

    #[test]
    fn languages_are_trimmed_bounded_and_stable(name in any_name(300)) {
        let trimmed = name.trim();
        match normalize_language(&name) {
            None => prop_assert!(trimmed.chars().count() > MAX_LANGUAGE_CHARS),
            Some(stored) => {
                prop_assert!(!stored.is_empty());
                prop_assert_eq!(stored.trim(), stored);
                prop_assert!(stored.chars().count() <= MAX_LANGUAGE_CHARS);
                if trimmed.is_empty() {
                    prop_assert_eq!(stored, PLAIN_TEXT);
                } else {
                    prop_assert_eq!(stored, trimmed);
                }
                // Normalizing a stored name keeps it.
                prop_assert_eq!(normalize_language(stored), Some(stored));
            }
        }
    }
}
