//! Badges for READMEs, in shields.io's "flat" style: a grey label on the
//! left, a coloured message on the right, white 11px Verdana (DejaVu Sans
//! where Verdana is missing) with a faint shadow, rounded corners. Both
//! parts are opaque, so a badge reads the same on light and dark pages.
//!
//! An SVG cannot measure its own text, so widths are estimated from
//! Verdana's advance widths ([`text_width`]) and each text is drawn with
//! that `textLength`: the estimate decides the layout, deterministically,
//! whatever font the reader has.
//!
//! Text passes [`text::for_label`] and is escaped by [`xml_escape`], as the
//! charts' titles are. [`shields_json`] is the same badge as a shields.io
//! endpoint document.
//!
//! The builder writes `users/NAME/badge.svg` and `users/NAME/shields.json`
//! (total XP, labelled with the site's name); the web crate draws one
//! language's badge per request (`badge.svg?language=NAME`) with [`level_badge`] and
//! [`shields_json`].

use std::fmt::Write as _;

use serde::Serialize;

use crate::charts::xml_escape;
use crate::render::thousands;
use crate::{json, level, text};

/// Colour of the label part.
pub const LABEL_COLOR: &str = "#555";
/// Colour of the text's shadow (at 30 % opacity).
const SHADOW_COLOR: &str = "#010101";

/// Message colours by level, each dark enough for white text. Levels
/// 0–4: slate; 5–9: blue; 10–19: green; 20–39: amber; 40 and up: purple.
/// (Level 10 is 160,000 XP, level 20 640,000, level 40 2,560,000.)
pub const COLOR_BEGINNER: &str = "#607080";
pub const COLOR_REGULAR: &str = "#007ec6";
pub const COLOR_SEASONED: &str = "#2e8540";
pub const COLOR_EXPERT: &str = "#b35900";
pub const COLOR_MASTER: &str = "#8e44ad";

/// The first level of each colour, ascending.
const RAMP: [(u32, &str); 5] = [
    (0, COLOR_BEGINNER),
    (5, COLOR_REGULAR),
    (10, COLOR_SEASONED),
    (20, COLOR_EXPERT),
    (40, COLOR_MASTER),
];

/// How long shields.io may keep a badge of ours, seconds (its minimum).
pub const SHIELDS_CACHE_SECONDS: u32 = 300;

/// Badge height, and the room left and right of each text.
const HEIGHT: u32 = 20;
const PADDING: u32 = 5;
/// Longest label or message drawn, in characters; longer ones end in `…`.
const MAX_CHARS: usize = 64;

/// Verdana's advance widths of ASCII 32 (space) to 126 (`~`), in font
/// units of 2,048 per em.
const VERDANA_ASCII: [u32; 95] = [
    720, 806, 940, 1676, 1302, 2204, 1488, 550, // space ! " # $ % & '
    930, 930, 1302, 1676, 745, 930, 745, 930, // ( ) * + , - . /
    1302, 1302, 1302, 1302, 1302, 1302, 1302, 1302, // 0–7
    1302, 1302, 930, 930, 1676, 1676, 1676, 1117, // 8 9 : ; < = > ?
    2048, 1400, 1404, 1430, 1578, 1295, 1177, 1588, // @ A–G
    1539, 862, 931, 1419, 1140, 1726, 1532, 1612, // H–O
    1235, 1612, 1424, 1400, 1262, 1499, 1400, 2025, // P–W
    1403, 1260, 1403, 930, 930, 930, 1676, 1302, // X Y Z [ \ ] ^ _
    1302, 1230, 1276, 1067, 1276, 1220, 720, 1276, // ` a–g
    1296, 562, 705, 1212, 562, 1992, 1296, 1243, // h–o
    1276, 1276, 874, 1067, 807, 1296, 1212, 1676, // p–w
    1212, 1212, 1076, 1300, 930, 1300, 1676, // x y z { | } ~
];
const UNITS_PER_EM: u32 = 2048;
const FONT_SIZE: u32 = 11;
/// Any other character: about a digit's width.
const DEFAULT_UNITS: u32 = 1300;
/// East Asian wide and fullwidth characters and emoji: a full em.
const WIDE_UNITS: u32 = UNITS_PER_EM;

/// True for characters drawn a full em wide: CJK, Hangul, fullwidth
/// forms, emoji.
fn is_wide(c: char) -> bool {
    matches!(
        c,
        '\u{1100}'..='\u{115f}'
            | '\u{2e80}'..='\u{303e}'
            | '\u{3041}'..='\u{33ff}'
            | '\u{3400}'..='\u{4dbf}'
            | '\u{4e00}'..='\u{9fff}'
            | '\u{a000}'..='\u{a4cf}'
            | '\u{ac00}'..='\u{d7a3}'
            | '\u{f900}'..='\u{faff}'
            | '\u{fe30}'..='\u{fe4f}'
            | '\u{ff00}'..='\u{ff60}'
            | '\u{ffe0}'..='\u{ffe6}'
            | '\u{1f300}'..='\u{1f64f}'
            | '\u{1f900}'..='\u{1f9ff}'
            | '\u{20000}'..='\u{3fffd}'
    )
}

/// True for characters that take no room: combining marks, zero-width
/// spaces and joiners, variation selectors, other controls.
fn is_zero_width(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{300}'..='\u{36f}'
                | '\u{1ab0}'..='\u{1aff}'
                | '\u{1dc0}'..='\u{1dff}'
                | '\u{200b}'..='\u{200f}'
                | '\u{20d0}'..='\u{20ff}'
                | '\u{2060}'..='\u{2064}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{fe20}'..='\u{fe2f}'
                | '\u{feff}'
        )
}

fn char_units(c: char) -> u32 {
    match c {
        ' '..='~' => VERDANA_ASCII[c as usize - 32],
        // the middle dot of the level message, as narrow as a period
        '\u{b7}' => VERDANA_ASCII[usize::from(b'.') - 32],
        c if is_zero_width(c) => 0,
        c if is_wide(c) => WIDE_UNITS,
        _ => DEFAULT_UNITS,
    }
}

/// The estimated width of `text` in Verdana 11px, whole pixels rounded up.
pub fn text_width(text: &str) -> u32 {
    let units: u32 = text.chars().map(char_units).sum();
    (units * FONT_SIZE).div_ceil(UNITS_PER_EM)
}

/// `text` cut to [`MAX_CHARS`] characters.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_CHARS {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(MAX_CHARS - 1).collect();
    s.push('…');
    s
}

/// Tenths of a pixel as an SVG number: `125` → `12.5`.
fn tenths(t: u32) -> String {
    if t.is_multiple_of(10) {
        (t / 10).to_string()
    } else {
        format!("{}.{}", t / 10, t % 10)
    }
}

/// One text of the badge, centred at `center` tenths of a pixel: its
/// shadow, then itself.
fn centered_text(out: &mut String, center: u32, width: u32, escaped: &str) {
    let x = tenths(center);
    let _ = write!(
        out,
        "<text x=\"{x}\" y=\"15\" fill=\"{SHADOW_COLOR}\" fill-opacity=\".3\" textLength=\"{width}\">{escaped}</text>\
         <text x=\"{x}\" y=\"14\" textLength=\"{width}\">{escaped}</text>"
    );
}

/// A standalone SVG badge: `label` on grey, `message` on `color` (a CSS
/// colour, e.g. one of this module's constants). An empty label leaves
/// only the message, as on shields.io.
pub fn badge_svg(label: &str, message: &str, color: &str) -> String {
    let label = shorten(&text::for_label(label));
    let message = shorten(&text::for_label(message));
    let (label_text, message_text) = (text_width(&label), text_width(&message));
    let label_width = if label.is_empty() {
        0
    } else {
        label_text + 2 * PADDING
    };
    let message_width = message_text + 2 * PADDING;
    let width = label_width + message_width;
    let spoken = if label.is_empty() {
        xml_escape(&message)
    } else {
        xml_escape(&format!("{label}: {message}"))
    };
    let color = xml_escape(color);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{spoken}\">\
         <title>{spoken}</title>\
         <linearGradient id=\"s\" x2=\"0\" y2=\"100%\"><stop offset=\"0\" stop-color=\"#bbb\" stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>\
         <clipPath id=\"r\"><rect width=\"{width}\" height=\"{HEIGHT}\" rx=\"3\" fill=\"#fff\"/></clipPath>\
         <g clip-path=\"url(#r)\"><rect width=\"{label_width}\" height=\"{HEIGHT}\" fill=\"{LABEL_COLOR}\"/>\
         <rect x=\"{label_width}\" width=\"{message_width}\" height=\"{HEIGHT}\" fill=\"{color}\"/>\
         <rect width=\"{width}\" height=\"{HEIGHT}\" fill=\"url(#s)\"/></g>\
         <g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,sans-serif\" text-rendering=\"geometricPrecision\" font-size=\"{FONT_SIZE}\">"
    );
    if !label.is_empty() {
        centered_text(&mut out, label_width * 5, label_text, &xml_escape(&label));
    }
    centered_text(
        &mut out,
        label_width * 10 + message_width * 5,
        message_text,
        &xml_escape(&message),
    );
    out.push_str("</g></svg>\n");
    out
}

/// The message colour of `level`: the ramp of the `COLOR_*` constants.
pub fn level_color(level: u32) -> &'static str {
    RAMP.iter()
        .rev()
        .find(|(first, _)| level >= *first)
        .map_or(COLOR_BEGINNER, |(_, color)| color)
}

/// `level N · X XP`, the message of a level badge: N is
/// [`level::level`] of `xp`, X has thousands separators.
pub fn level_message(xp: u64) -> String {
    format!("level {} · {} XP", level::level(xp), thousands(xp))
}

/// A level badge: `label`, and `level N · X XP` in the colour of N.
pub fn level_badge(label: &str, xp: u64) -> String {
    badge_svg(label, &level_message(xp), level_color(level::level(xp)))
}

#[derive(Serialize)]
struct Endpoint<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u8,
    label: &'a str,
    message: String,
    color: &'static str,
    #[serde(rename = "cacheSeconds")]
    cache_seconds: u32,
}

/// The shields.io endpoint document of [`level_badge`]:
/// `{"schemaVersion":1,"label","message","color","cacheSeconds":300}`, for
/// `https://img.shields.io/endpoint?url=…`. The label is kept exact and
/// `<>&` are escaped as in the read API ([`json`]).
pub fn shields_json(label: &str, xp: u64) -> String {
    let doc = Endpoint {
        schema_version: 1,
        label,
        message: level_message(xp),
        color: level_color(level::level(xp)),
        cache_seconds: SHIELDS_CACHE_SECONDS,
    };
    // strings and numbers only: serializing cannot fail
    json::inert(serde_json::to_string(&doc).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        for (text, width) in [
            ("", 0),
            (" ", 4),
            ("codestats", 53),
            ("level 22 · 812,345 XP", 120),
            ("日本", 22),
            ("e\u{301}", 7),
            ("Ω", 7),
        ] {
            assert_eq!(text_width(text), width, "{text:?}");
        }
        // deterministic and monotonic
        assert!(text_width("WWW") > text_width("iii"));
    }

    #[test]
    fn messages_and_colours() {
        assert_eq!(level_message(812_345), "level 22 · 812,345 XP");
        assert_eq!(level_message(0), "level 0 · 0 XP");
        for (level, color) in [
            (0, COLOR_BEGINNER),
            (4, COLOR_BEGINNER),
            (5, COLOR_REGULAR),
            (19, COLOR_SEASONED),
            (20, COLOR_EXPERT),
            (40, COLOR_MASTER),
            (u32::MAX, COLOR_MASTER),
        ] {
            assert_eq!(level_color(level), color, "{level}");
        }
    }

    #[test]
    fn text_is_filtered_and_escaped() {
        let svg = badge_svg("<a\u{202e}&\"'", "x\u{1b}", "#fff\"/><script>");
        assert!(svg.contains("aria-label=\"&lt;a&amp;&quot;&#39;: x\u{fffd}\""));
        assert!(!svg.contains("<script"));
        assert!(!svg.contains('\u{202e}'));
        let long = badge_svg("l", &"m".repeat(200), "#000");
        assert!(long.contains(&format!("{}…", "m".repeat(63))));
    }

    #[test]
    fn an_empty_label_leaves_the_message() {
        let svg = badge_svg("", "ok", "#000");
        assert_eq!(svg.matches("<text").count(), 2);
        assert!(svg.contains("aria-label=\"ok\""));
    }

    #[test]
    fn the_endpoint_document() {
        let doc: serde_json::Value = serde_json::from_str(&shields_json("a<b", 1_600)).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({"schemaVersion": 1, "label": "a<b",
                "message": "level 1 · 1,600 XP", "color": COLOR_BEGINNER,
                "cacheSeconds": 300})
        );
        assert!(shields_json("a<b", 0).contains("a\\u003cb"));
    }
}
