//! User text on its way out: what a name may put into a page or a chart.
//!
//! The models keep names exactly as they were sent; only the text written
//! into HTML and SVG is filtered, here, so that every file stays valid
//! whatever the names hold:
//!
//! - characters XML 1.0 forbids (C0 controls other than tab, line feed and
//!   carriage return, U+FFFE, U+FFFF) and those it discourages and HTML
//!   reports as parse errors (DEL, C1 controls, the other noncharacters)
//!   become U+FFFD, so a reader sees that something was there;
//! - in SVG, which has no `<bdi>`, explicit bidi formatting (embeddings,
//!   overrides, isolates) is dropped, so a right-to-left override cannot
//!   reorder a chart's title. Pages keep it and isolate every name with
//!   `<bdi>` instead.
//!
//! JSON needs neither: `serde_json` escapes controls (`\u001b`) and any
//! other character is valid in a JSON string.

use std::borrow::Cow;

/// The replacement for a character no output may hold.
pub const REPLACEMENT: char = '\u{fffd}';

/// True for a character no page or chart may hold: controls other than
/// `\t`, `\n`, `\r`, and noncharacters (U+FDD0–U+FDEF, U+xFFFE, U+xFFFF).
pub fn is_forbidden(c: char) -> bool {
    let control = c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    let nonchar = matches!(c, '\u{fdd0}'..='\u{fdef}') || (c as u32) & 0xfffe == 0xfffe;
    control || nonchar
}

/// True for explicit bidi formatting: LRE, RLE, PDF, LRO, RLO (U+202A–E)
/// and LRI, RLI, FSI, PDI (U+2066–9).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every forbidden character replaced by U+FFFD: for pages,
/// where names keep their bidi controls inside `<bdi>`.
pub fn for_page(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_forbidden) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_forbidden(c) { REPLACEMENT } else { c })
            .collect(),
    )
}

/// [`for_page`], and without bidi controls: for charts, and for text in a
/// page that cannot hold markup (the `<title>`).
pub fn for_label(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_forbidden(c) || is_bidi_control(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .filter(|c| !is_bidi_control(*c))
            .map(|c| if is_forbidden(c) { REPLACEMENT } else { c })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_replaced_and_dropped() {
        for (input, page, label) in [
            ("Rust", "Rust", "Rust"),
            ("a\tb\nc\rd", "a\tb\nc\rd", "a\tb\nc\rd"),
            ("\u{1b}[31m", "\u{fffd}[31m", "\u{fffd}[31m"),
            ("nul\0", "nul\u{fffd}", "nul\u{fffd}"),
            (
                "\u{7f}\u{85}\u{9f}",
                "\u{fffd}\u{fffd}\u{fffd}",
                "\u{fffd}\u{fffd}\u{fffd}",
            ),
            (
                "\u{fffe}\u{ffff}\u{fdd0}",
                "\u{fffd}\u{fffd}\u{fffd}",
                "\u{fffd}\u{fffd}\u{fffd}",
            ),
            (
                "\u{1fffe}\u{10ffff}",
                "\u{fffd}\u{fffd}",
                "\u{fffd}\u{fffd}",
            ),
            ("\u{202e}evil", "\u{202e}evil", "evil"),
            ("\u{2069}\u{2066}x", "\u{2069}\u{2066}x", "x"),
            // marks and right-to-left letters are not formatting: kept
            ("\u{200f}שלום", "\u{200f}שלום", "\u{200f}שלום"),
            ("\u{fffd}\u{fffc}", "\u{fffd}\u{fffc}", "\u{fffd}\u{fffc}"),
        ] {
            assert_eq!(for_page(input), page, "{input:?}");
            assert_eq!(for_label(input), label, "{input:?}");
        }
    }
}
