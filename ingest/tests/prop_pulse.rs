//! Property tests of the pulse parser, `ingest::pulse::parse`: it never
//! panics, accepts every valid pulse with its values intact, and refuses
//! each kind of invalid field with Code::Stats' message.
//!
//! 256 cases per property by default; `PROPTEST_CASES=100000 cargo test -p
//! ingest --test prop_pulse` runs longer.

use chrono::{DateTime, FixedOffset, Utc};
use ingest::{
    limits::{MAX_PULSE_AGE, MAX_UTC_OFFSET_MINUTES, MAX_XP_PER_ITEM, MAX_XPS_PER_PULSE},
    pulse::{
        INVALID_CODED_AT, INVALID_DATE, INVALID_OFFSET, INVALID_XP, INVALID_XPS, Pulse,
        TOO_MANY_XPS, parse,
    },
};
use proptest::prelude::*;
use serde_json::{Value, json};
use sql::names::{MAX_LANGUAGE_CHARS, PLAIN_TEXT};

const WEEK: i64 = MAX_PULSE_AGE.as_secs() as i64;

/// Every message `parse` may answer with.
const MESSAGES: [&str; 6] = [
    INVALID_XPS,
    INVALID_CODED_AT,
    INVALID_OFFSET,
    INVALID_DATE,
    INVALID_XP,
    TOO_MANY_XPS,
];

/// "Now" as Unix seconds: 2017 to 2033.
fn now() -> impl Strategy<Value = i64> {
    1_500_000_000i64..2_000_000_000
}

/// How a valid offset is written.
#[derive(Debug, Clone, Copy)]
enum OffsetForm {
    Colon,
    NoColon,
    Zulu,
}

fn offset_text(minutes: i32, form: OffsetForm) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let (h, m) = (minutes.abs() / 60, minutes.abs() % 60);
    match form {
        OffsetForm::Zulu if minutes == 0 => "Z".to_owned(),
        OffsetForm::NoColon => format!("{sign}{h:02}{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}"),
    }
}

/// `utc` written in local time at `offset_minutes`, with `separator`
/// between date and time, `fraction` digits after the seconds and `offset`
/// appended as is.
fn local_text(
    utc: i64,
    offset_minutes: i32,
    separator: char,
    fraction: &str,
    offset: &str,
) -> String {
    let zone = FixedOffset::east_opt(offset_minutes * 60).unwrap();
    let local = DateTime::<Utc>::from_timestamp(utc, 0)
        .unwrap()
        .with_timezone(&zone);
    let dot = if fraction.is_empty() { "" } else { "." };
    format!(
        "{}{separator}{}{dot}{fraction}{offset}",
        local.format("%Y-%m-%d"),
        local.format("%H:%M:%S"),
    )
}

/// A valid `coded_at` and what it means: (text, UTC seconds, offset).
fn valid_coded_at(now: i64) -> impl Strategy<Value = (String, i64, i16)> {
    (
        prop_oneof![
            4 => 0..=WEEK,
            1 => Just(WEEK),
            1 => -(5 * 365 * 86_400i64)..0, // the future
        ],
        -MAX_UTC_OFFSET_MINUTES..=MAX_UTC_OFFSET_MINUTES,
        prop_oneof![
            Just(0),
            Just(MAX_UTC_OFFSET_MINUTES),
            Just(-MAX_UTC_OFFSET_MINUTES),
            Just(330)
        ],
        any::<bool>(),
        prop::sample::select(vec![
            OffsetForm::Colon,
            OffsetForm::NoColon,
            OffsetForm::Zulu,
        ]),
        prop::sample::select(vec!['T', 't', ' ']),
        "[0-9]{0,9}",
    )
        .prop_map(
            move |(age, offset, special, use_special, form, sep, fraction)| {
                let offset = if use_special { special } else { offset };
                let utc = now - age;
                let text = local_text(utc, offset, sep, &fraction, &offset_text(offset, form));
                (text, utc, offset as i16)
            },
        )
}

/// A language name as a plugin may send it, and how it is stored.
fn language() -> impl Strategy<Value = (String, String)> {
    let core = prop_oneof![
        6 => prop::collection::vec(any::<char>(), 0..12),
        2 => prop::collection::vec(prop::sample::select(vec!['C', '+', '#', ' ', 'é', '日', '\u{202e}', '\0']), 0..12),
        1 => prop::collection::vec(any::<char>(), MAX_LANGUAGE_CHARS..=MAX_LANGUAGE_CHARS),
    ];
    (core, "[ \t\n]{0,3}", "[ \t\n]{0,3}").prop_map(|(core, before, after)| {
        let core: String = core.into_iter().collect();
        let sent = format!("{before}{core}{after}");
        let stored = match sent.trim() {
            "" => PLAIN_TEXT.to_owned(),
            trimmed => trimmed.to_owned(),
        };
        (sent, stored)
    })
}

fn items(
    range: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<(String, String, u64)>> {
    prop::collection::vec(
        (
            language(),
            prop_oneof![0..=MAX_XP_PER_ITEM, Just(0), Just(MAX_XP_PER_ITEM)],
        )
            .prop_map(|((sent, stored), xp)| (sent, stored, xp)),
        range,
    )
}

fn xps_json(items: &[(String, String, u64)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(sent, _, xp)| json!({"language": sent, "xp": xp}))
            .collect(),
    )
}

/// A valid pulse body and the pulse it must parse to, at `now`.
fn valid_pulse() -> impl Strategy<Value = (i64, Vec<u8>, Pulse)> {
    now().prop_flat_map(|now| {
        (valid_coded_at(now), items(1..=MAX_XPS_PER_PULSE)).prop_map(
            move |((coded_at, utc, offset), items)| {
                let body = json!({"coded_at": coded_at, "xps": xps_json(&items)});
                let pulse = Pulse {
                    coded_at: utc.min(now),
                    utc_offset: offset,
                    xps: items
                        .into_iter()
                        .map(|(_, stored, xp)| (stored, xp as u32))
                        .collect(),
                };
                (now, serde_json::to_vec(&body).unwrap(), pulse)
            },
        )
    })
}

/// A pulse body around `coded_at` and `xps`, valid otherwise.
fn body(coded_at: Value, xps: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"coded_at": coded_at, "xps": xps})).unwrap()
}

/// Any JSON value, weighted towards the names and shapes of a pulse.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(MAX_XP_PER_ITEM + 1)),
        ".{0,30}".prop_map(Value::from),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,3})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?"
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("coded_at".to_owned()),
                        Just("xps".to_owned()),
                        Just("language".to_owned()),
                        Just("xp".to_owned()),
                        ".{0,8}",
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// The parser's answer is either a pulse within the limits or one of the
/// documented messages.
fn check_outcome(result: Result<Pulse, &str>, now: i64) -> Result<(), TestCaseError> {
    match result {
        Ok(pulse) => {
            prop_assert!(pulse.coded_at <= now && now - pulse.coded_at <= WEEK);
            prop_assert!(i32::from(pulse.utc_offset).abs() <= MAX_UTC_OFFSET_MINUTES);
            prop_assert!(pulse.xps.len() <= MAX_XPS_PER_PULSE);
            for (language, xp) in &pulse.xps {
                prop_assert!(u64::from(*xp) <= MAX_XP_PER_ITEM);
                prop_assert!(!language.is_empty() && language.trim() == language);
                prop_assert!(language.chars().count() <= MAX_LANGUAGE_CHARS);
            }
        }
        Err(message) => prop_assert!(MESSAGES.contains(&message), "{}", message),
    }
    Ok(())
}

proptest! {
    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), now in now()) {
        check_outcome(parse(&bytes, now), now)?;
    }

    #[test]
    fn never_panics_on_json(value in json_value(), now in now()) {
        check_outcome(parse(&serde_json::to_vec(&value).unwrap(), now), now)?;
    }

    #[test]
    fn never_panics_on_pulse_shaped_json(
        coded_at in json_value(),
        xps in prop::collection::vec((json_value(), json_value()), 0..4),
        now in now(),
    ) {
        let xps: Vec<Value> = xps.into_iter().map(|(l, x)| json!({"language": l, "xp": x})).collect();
        check_outcome(parse(&body(coded_at, Value::Array(xps)), now), now)?;
    }

    #[test]
    fn never_panics_on_mangled_timestamps(
        (now, (text, _, _)) in now().prop_flat_map(|now| (Just(now), valid_coded_at(now))),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), any::<bool>()), 1..4),
    ) {
        let mut chars: Vec<char> = text.chars().collect();
        for (at, c, insert) in edits {
            let i = at.index(chars.len() + 1);
            if insert || i == chars.len() {
                chars.insert(i, c);
            } else {
                chars[i] = c;
            }
        }
        let text: String = chars.into_iter().collect();
        check_outcome(parse(&body(json!(text), json!([])), now), now)?;
    }

    #[test]
    fn accepts_every_valid_pulse((now, body, expected) in valid_pulse()) {
        prop_assert_eq!(parse(&body, now), Ok(expected), "{}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn refuses_every_truncated_pulse((now, body, _) in valid_pulse(), at in any::<prop::sample::Index>()) {
        let cut = at.index(body.len());
        prop_assert_eq!(parse(&body[..cut], now), Err(INVALID_XPS));
    }

    #[test]
    fn refuses_pulses_older_than_a_week(
        now in now(),
        age in prop_oneof![Just(WEEK + 1), WEEK + 1..=20 * 365 * 86_400],
        offset in -MAX_UTC_OFFSET_MINUTES..=MAX_UTC_OFFSET_MINUTES,
    ) {
        let text = local_text(now - age, offset, 'T', "", &offset_text(offset, OffsetForm::Colon));
        prop_assert_eq!(parse(&body(json!(text), json!([])), now), Err(INVALID_DATE));
    }

    #[test]
    fn refuses_offsets_out_of_range(
        now in now(),
        hours in 0..=99i32,
        minutes in 0..=99i32,
        negative in any::<bool>(),
        colon in any::<bool>(),
    ) {
        prop_assume!(minutes >= 60 || hours * 60 + minutes > MAX_UTC_OFFSET_MINUTES);
        let sign = if negative { '-' } else { '+' };
        let offset = if colon {
            format!("{sign}{hours:02}:{minutes:02}")
        } else {
            format!("{sign}{hours:02}{minutes:02}")
        };
        let text = local_text(now - 60, 0, 'T', "", &offset);
        prop_assert_eq!(parse(&body(json!(text), json!([])), now), Err(INVALID_OFFSET), "{}", text);
    }

    #[test]
    fn refuses_offsets_in_other_forms(
        now in now(),
        offset in prop_oneof![
            Just(String::new()),
            "[A-Za-y]{1,5}".prop_filter("not Z", |s| s != "Z"),
            "[+-][0-9]{1,3}",
            "[+-][0-9]{2}:[0-9]{1}",
            "[+-][0-9]{5,6}",
            "[+-][0-9]{2}[^0-9:][0-9]{2}",
            "[+-][0-9]{2}:[0-9]{2}:[0-9]{2}",
        ],
    ) {
        let text = local_text(now - 60, 0, 'T', "", &offset);
        prop_assert_eq!(parse(&body(json!(text), json!([])), now), Err(INVALID_OFFSET), "{}", text);
    }

    #[test]
    fn refuses_coded_at_that_is_not_a_string(now in now(), coded_at in json_value()) {
        prop_assume!(!coded_at.is_string());
        prop_assert_eq!(parse(&body(coded_at, json!([])), now), Err(INVALID_CODED_AT));
    }

    #[test]
    fn refuses_impossible_dates(
        now in now(),
        field in 0..6usize,
        wrong in any::<u32>(),
    ) {
        // year-month-day hour:minute:second; the month, day, hour, minute
        // or second out of range (60 seconds is a leap second: allowed).
        let mut parts = [2024u32, 6, 15, 12, 30, 30];
        let bad = match field {
            0 => 13 + wrong % 87,
            1 => if wrong % 2 == 0 { 0 } else { 32 + wrong % 68 },
            2 => 24 + wrong % 76,
            3 => 60 + wrong % 40,
            4 => 61 + wrong % 39,
            _ => 30 + wrong % 2, // February 30th or 31st
        };
        let index = if field == 5 { 2 } else { field + 1 };
        if field == 5 {
            parts[1] = 2;
        }
        parts[index] = bad;
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
        );
        prop_assert_eq!(parse(&body(json!(text), json!([])), now), Err(INVALID_CODED_AT), "{}", text);
    }

    #[test]
    fn refuses_coded_at_that_is_not_a_date(now in now(), text in "[^0-9]{0,40}") {
        prop_assert_eq!(parse(&body(json!(text), json!([])), now), Err(INVALID_CODED_AT), "{:?}", text);
    }

    #[test]
    fn refuses_bodies_without_the_pulse_shape(
        now in now(),
        (text, _, _) in now().prop_flat_map(valid_coded_at),
        other in json_value(),
        shape in 0..4usize,
    ) {
        let body = match shape {
            // xps not a list
            0 if !other.is_array() => body(json!(text), other),
            // no xps, no coded_at
            1 => serde_json::to_vec(&json!({"coded_at": text, "other": other})).unwrap(),
            2 => serde_json::to_vec(&json!({"xps": [], "other": other})).unwrap(),
            // not an object
            _ if !other.is_object() => serde_json::to_vec(&other).unwrap(),
            _ => return Ok(()),
        };
        prop_assert_eq!(parse(&body, now), Err(INVALID_XPS));
    }

    #[test]
    fn refuses_too_many_items(
        (now, (text, _, _)) in now().prop_flat_map(|now| (Just(now), valid_coded_at(now))),
        items in items(MAX_XPS_PER_PULSE + 1..=3 * MAX_XPS_PER_PULSE),
    ) {
        prop_assert_eq!(parse(&body(json!(text), xps_json(&items)), now), Err(TOO_MANY_XPS));
    }

    #[test]
    fn refuses_any_invalid_item(
        (now, (text, _, _)) in now().prop_flat_map(|now| (Just(now), valid_coded_at(now))),
        items in items(0..=MAX_XPS_PER_PULSE - 1),
        at in any::<prop::sample::Index>(),
        bad in prop_oneof![
            (MAX_XP_PER_ITEM + 1..=u64::MAX).prop_map(|xp| json!({"language": "a", "xp": xp})),
            (i64::MIN..0).prop_map(|xp| json!({"language": "a", "xp": xp})),
            any::<f64>().prop_map(|xp| json!({"language": "a", "xp": xp})),
            (0..=MAX_XP_PER_ITEM).prop_map(|xp| json!({"language": "a", "xp": xp as f64})),
            json_value().prop_filter("not an integer", |v| !v.is_u64() && !v.is_i64())
                .prop_map(|xp| json!({"language": "a", "xp": xp})),
            json_value().prop_filter("not a string", |v| !v.is_string())
                .prop_map(|language| json!({"language": language, "xp": 1})),
            Just(json!({"xp": 1})),
            Just(json!({"language": "a"})),
            (MAX_LANGUAGE_CHARS + 1..=2 * MAX_LANGUAGE_CHARS, "[ \t]{0,2}")
                .prop_map(|(n, pad)| json!({"language": format!("{pad}{}{pad}", "λ".repeat(n)), "xp": 1})),
            json_value().prop_filter("not an object", |v| !v.is_object()),
        ],
    ) {
        let mut xps = match xps_json(&items) {
            Value::Array(xps) => xps,
            _ => unreachable!(),
        };
        xps.insert(at.index(xps.len() + 1), bad);
        prop_assert_eq!(parse(&body(json!(text), Value::Array(xps)), now), Err(INVALID_XP));
    }
}
