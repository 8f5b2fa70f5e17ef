//! Property tests of `builder::paths::segment`: every name becomes one safe
//! path segment, and two different names never share one.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000 cargo test -p
//! builder --test prop_paths` runs longer.

use builder::paths::{MAX_SEGMENT_BYTES, name_of_segment, segment, url_segment};
use proptest::prelude::*;
use std::{
    collections::HashMap,
    path::{Component, Path},
};

/// Any name, weighted towards the characters the scheme escapes or keeps
/// specially, so near-collisions (`a~2Fb` beside `a/b`) are likely.
fn name() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        3 => any::<char>(),
        4 => prop::sample::select(vec![
            '~', '.', '/', '\\', '%', '2', 'E', 'F', '7', 'e', 'a', 'A', ' ', '\0', '\n', '-',
            '_', ':', '\u{202e}', '\u{fffe}', 'ü', 'Ñ', '日', '😀',
        ]),
    ];
    prop_oneof![
        4 => prop::collection::vec(c.clone(), 0..12),
        1 => prop::collection::vec(c, 40..200),
    ]
    .prop_map(|c| c.into_iter().collect())
}

fn check_safe(name: &str, seg: &str) -> Result<(), TestCaseError> {
    prop_assert!(!seg.is_empty(), "{:?}", name);
    prop_assert!(
        seg != "." && seg != ".." && !seg.starts_with('.'),
        "{:?} → {:?}",
        name,
        seg
    );
    prop_assert!(
        seg.len() <= MAX_SEGMENT_BYTES,
        "{:?} → {} bytes",
        name,
        seg.len()
    );
    prop_assert!(
        !seg.chars()
            .any(|c| matches!(c, '/' | '\\' | '%' | '\0') || c.is_control()),
        "{:?} → {:?}",
        name,
        seg
    );
    let components: Vec<_> = Path::new(seg).components().collect();
    prop_assert_eq!(components.len(), 1, "{:?} → {:?}", name, seg);
    prop_assert!(matches!(components[0], Component::Normal(_)), "{:?}", name);
    // In a URL, only unreserved ASCII and escapes remain.
    let url = url_segment(name);
    prop_assert!(
        url.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)),
        "{:?} → {:?}",
        name,
        url
    );
    Ok(())
}

proptest! {
    #[test]
    fn every_segment_is_one_safe_component(name in name()) {
        check_safe(&name, &segment(&name))?;
    }

    #[test]
    fn uncut_segments_decode_to_the_name(name in name()) {
        let seg = segment(&name);
        if seg.contains("~~") {
            prop_assert_eq!(name_of_segment(&seg), None);
        } else {
            prop_assert_eq!(name_of_segment(&seg), Some(name));
        }
    }

    #[test]
    fn different_names_never_share_a_segment(names in prop::collection::vec(name(), 1..64)) {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for name in &names {
            if let Some(before) = seen.insert(segment(name), name) {
                prop_assert_eq!(before, name.as_str(), "same segment {:?}", segment(name));
            }
        }
    }

    #[test]
    fn a_name_and_its_escaped_spelling_differ(name in name()) {
        // The segment read as a name is another name: it must not map to
        // the same segment (unless the name needed no escaping at all).
        let seg = segment(&name);
        if seg != name {
            prop_assert_ne!(segment(&seg), seg);
        }
    }
}
