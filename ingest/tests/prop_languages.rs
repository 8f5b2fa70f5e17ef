//! Property tests of `ingest::languages::Languages`: the first spelling of
//! a language (compared case-insensitively) is the one every later spelling
//! is stored as.
//!
//! 256 cases by default; `PROPTEST_CASES=100000 cargo test -p ingest --test
//! prop_languages` runs longer.

use ingest::languages::Languages;
use proptest::prelude::*;
use sql::names::fold;
use std::collections::HashMap;

/// Names from a small alphabet with case pairs, so spellings of one
/// language meet often.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            'a', 'A', 'b', 'B', '+', '#', 'ß', 'S', 's', 'Σ', 'σ', 'ς', 'K', '\u{212a}', 'k', 'İ',
            'i', 'É', 'é',
        ]),
        1..4,
    )
    .prop_map(|c| c.into_iter().collect())
}

proptest! {
    #[test]
    fn the_first_spelling_wins(names in prop::collection::vec(name(), 1..40), now in any::<u32>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let languages = Languages::default();
        let mut first: HashMap<String, String> = HashMap::new();
        for name in &names {
            let (canonical, new) = runtime.block_on(languages.canonical(name, now));
            let key = fold(name);
            match first.get(&key) {
                Some(expected) => {
                    prop_assert_eq!(&*canonical, expected.as_str());
                    prop_assert!(new.is_none(), "{:?} is known", name);
                }
                None => {
                    prop_assert_eq!(&*canonical, name.as_str());
                    let row = new.expect("a new language has a row to store");
                    prop_assert_eq!(&row.name_key, &key);
                    prop_assert_eq!(&row.name, name);
                    prop_assert_eq!(row.first_seen, now);
                    first.insert(key, name.clone());
                }
            }
            // The canonical spelling has the same key as every spelling of it.
            prop_assert_eq!(fold(&canonical), fold(name));
        }
    }
}
