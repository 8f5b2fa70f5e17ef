//! Parsing and validating a pulse as Code::Stats does, with its error
//! messages (plugins and their users read them).

use crate::limits::{MAX_PULSE_AGE, MAX_UTC_OFFSET_MINUTES, MAX_XP_PER_ITEM, MAX_XPS_PER_PULSE};
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde_json::Value;

pub const INVALID_XPS: &str = "Invalid xps format.";
pub const INVALID_CODED_AT: &str = "Invalid coded_at format.";
pub const INVALID_OFFSET: &str = "Invalid TZ offset!";
pub const INVALID_DATE: &str = "Invalid date.";
pub const INVALID_XP: &str = "Invalid XP format.";
pub const TOO_MANY_XPS: &str = "Too many xps in one pulse.";

/// A valid pulse, before languages are made canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulse {
    /// Unix seconds, UTC; a future time is replaced by now.
    pub coded_at: i64,
    /// The client's offset from UTC, minutes.
    pub utc_offset: i16,
    /// (language, xp): trimmed, never empty, in the order sent.
    pub xps: Vec<(String, u32)>,
}

/// Parses a request body; `now` is Unix seconds.
pub fn parse(body: &[u8], now: i64) -> Result<Pulse, &'static str> {
    let value: Value = serde_json::from_slice(body).map_err(|_| INVALID_XPS)?;
    let object = value.as_object().ok_or(INVALID_XPS)?;
    let coded_at = object.get("coded_at").ok_or(INVALID_XPS)?;
    let xps = object
        .get("xps")
        .and_then(Value::as_array)
        .ok_or(INVALID_XPS)?;
    let coded_at = coded_at.as_str().ok_or(INVALID_CODED_AT)?;
    let (utc, offset) = parse_timestamp(coded_at)?;
    if now - utc > MAX_PULSE_AGE.as_secs() as i64 {
        return Err(INVALID_DATE);
    }
    if xps.len() > MAX_XPS_PER_PULSE {
        return Err(TOO_MANY_XPS);
    }
    let xps = xps.iter().map(parse_xp).collect::<Result<_, _>>()?;
    Ok(Pulse {
        coded_at: utc.min(now),
        utc_offset: offset,
        xps,
    })
}

fn parse_xp(item: &Value) -> Result<(String, u32), &'static str> {
    let language = item
        .get("language")
        .and_then(Value::as_str)
        .ok_or(INVALID_XP)?;
    let xp = item.get("xp").and_then(Value::as_u64).ok_or(INVALID_XP)?;
    if xp > MAX_XP_PER_ITEM {
        return Err(INVALID_XP);
    }
    let language = sql::names::normalize_language(language).ok_or(INVALID_XP)?;
    Ok((language.to_owned(), xp as u32))
}

/// RFC 3339 with the offsets plugins send: `Z`/`z`, `+HH:MM` and `+HHMM`.
/// Returns (Unix seconds UTC, offset minutes).
pub fn parse_timestamp(text: &str) -> Result<(i64, i16), &'static str> {
    let text = text.trim();
    // The date-time part is 19 ASCII characters, then optional fraction.
    let (local, rest) = split_local(text).ok_or(INVALID_CODED_AT)?;
    let local = NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M:%S%.f")
        .map_err(|_| INVALID_CODED_AT)?;
    let minutes = parse_offset(rest).ok_or(INVALID_OFFSET)?;
    let offset = FixedOffset::east_opt(minutes * 60).ok_or(INVALID_OFFSET)?;
    let instant: DateTime<Utc> = local
        .and_local_timezone(offset)
        .single()
        .ok_or(INVALID_CODED_AT)?
        .with_timezone(&Utc);
    Ok((instant.timestamp(), minutes as i16))
}

/// Splits `YYYY-MM-DDTHH:MM:SS[.fff]` (T, t or space) from the offset.
fn split_local(text: &str) -> Option<(String, &str)> {
    if text.len() < 19 || !text.is_char_boundary(19) {
        return None;
    }
    let (head, mut rest) = text.split_at(19);
    let mut local: String = head
        .char_indices()
        .map(|(i, c)| {
            if i == 10 && matches!(c, 't' | ' ') {
                'T'
            } else {
                c
            }
        })
        .collect();
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        local.push('.');
        local.push_str(&fraction[..digits]);
        rest = &fraction[digits..];
    }
    Some((local, rest))
}

fn parse_offset(text: &str) -> Option<i32> {
    if text == "Z" || text == "z" {
        return Some(0);
    }
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = match text.len() {
        6 if text.as_bytes()[3] == b':' => format!("{}{}", &text[1..3], &text[4..6]),
        5 => text[1..5].to_owned(),
        _ => return None,
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= MAX_UTC_OFFSET_MINUTES).then_some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    fn check_ts(text: &str, expected: Result<(i64, i16), &str>) {
        assert_eq!(parse_timestamp(text), expected, "{text}");
    }

    #[test]
    fn timestamps() {
        let t = 1_461_419_036; // 2016-04-23T13:43:56Z
        check_ts("2016-04-24T01:43:56+12:00", Ok((t, 720)));
        check_ts("2016-04-24T01:43:56+1200", Ok((t, 720)));
        check_ts("2016-04-23T13:43:56Z", Ok((t, 0)));
        check_ts("2016-04-23T13:43:56z", Ok((t, 0)));
        check_ts("2016-04-23t13:43:56Z", Ok((t, 0)));
        check_ts("2016-04-23T13:43:56.123Z", Ok((t, 0)));
        check_ts("2016-04-23T16:43:56+03:00", Ok((t, 180)));
        check_ts("2016-04-23T16:43:56+0300", Ok((t, 180)));
        check_ts("2016-04-23T01:43:56-12:00", Ok((t, -720)));
        check_ts("2016-04-24T03:43:56+14:00", Ok((t, 840)));
        check_ts("2016-04-23T19:13:56+05:30", Ok((t, 330)));
        check_ts("2016-04-23T13:43:56", Err(INVALID_OFFSET));
        check_ts("2016-04-23T13:43:56+3", Err(INVALID_OFFSET));
        check_ts("2016-04-23T13:43:56+03", Err(INVALID_OFFSET));
        check_ts("2016-04-23T13:43:56+15:00", Err(INVALID_OFFSET));
        check_ts("2016-04-23T13:43:56+03:60", Err(INVALID_OFFSET));
        check_ts("2016-04-23T13:43:56UTC", Err(INVALID_OFFSET));
        check_ts("2016-04-23 13:43:56+0000", Ok((t, 0)));
        check_ts("2016-13-23T13:43:56Z", Err(INVALID_CODED_AT));
        check_ts("yesterday", Err(INVALID_CODED_AT));
        check_ts("", Err(INVALID_CODED_AT));
        check_ts("2016-04-23T13:43:56.Z", Err(INVALID_CODED_AT));
        check_ts("2016-04-23T13:4€:56Z", Err(INVALID_CODED_AT));
    }

    fn body(coded_at: &str, xps: &str) -> Vec<u8> {
        format!(r#"{{"coded_at":"{coded_at}","xps":{xps}}}"#).into_bytes()
    }

    fn check(body: &[u8], expected: Result<Pulse, &str>) {
        assert_eq!(
            parse(body, NOW),
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }

    #[test]
    fn bodies() {
        let now = "2023-11-14T22:13:20Z";
        check(
            &body(
                now,
                r#"[{"language":"C++","xp":15},{"language":" Elixir ","xp":30}]"#,
            ),
            Ok(Pulse {
                coded_at: NOW,
                utc_offset: 0,
                xps: vec![("C++".into(), 15), ("Elixir".into(), 30)],
            }),
        );
        check(
            &body(now, r#"[{"language":"","xp":0}]"#),
            Ok(Pulse {
                coded_at: NOW,
                utc_offset: 0,
                xps: vec![("Plain text".into(), 0)],
            }),
        );
        check(
            &body(now, "[]"),
            Ok(Pulse {
                coded_at: NOW,
                utc_offset: 0,
                xps: vec![],
            }),
        );
        for bad in [
            "",
            "nope",
            "[]",
            "{}",
            r#"{"xps":[]}"#,
            r#"{"coded_at":"x"}"#,
            r#"{"coded_at":"x","xps":{}}"#,
        ] {
            check(bad.as_bytes(), Err(INVALID_XPS));
        }
        check(br#"{"coded_at":5,"xps":[]}"#, Err(INVALID_CODED_AT));
        for bad in [
            r#"[{"language":"a","xp":-1}]"#,
            r#"[{"language":"a","xp":1.5}]"#,
            r#"[{"language":"a","xp":"1"}]"#,
            r#"[{"language":5,"xp":1}]"#,
            r#"[{"xp":1}]"#,
            r#"[{"language":"a"}]"#,
            r#"[{"language":"a","xp":1},"x"]"#,
            r#"[{"language":"a","xp":100001}]"#,
        ] {
            check(&body(now, bad), Err(INVALID_XP));
        }
        let long = "l".repeat(256);
        check(
            &body(now, &format!(r#"[{{"language":"{long}","xp":1}}]"#)),
            Err(INVALID_XP),
        );
        let many = format!("[{}]", vec![r#"{"language":"a","xp":1}"#; 101].join(","));
        check(&body(now, &many), Err(TOO_MANY_XPS));
        let max = format!(
            "[{}]",
            vec![r#"{"language":"a","xp":100000}"#; 100].join(",")
        );
        assert!(parse(&body(now, &max), NOW).is_ok());
    }

    #[test]
    fn age_and_future() {
        // Exactly 7 days old is accepted, a second more is not.
        check(
            &body("2023-11-07T22:13:20Z", "[]"),
            Ok(Pulse {
                coded_at: NOW - 604_800,
                utc_offset: 0,
                xps: vec![],
            }),
        );
        check(&body("2023-11-07T22:13:19Z", "[]"), Err(INVALID_DATE));
        // The future becomes now, the offset stays.
        check(
            &body("2030-01-01T00:00:00+02:00", "[]"),
            Ok(Pulse {
                coded_at: NOW,
                utc_offset: 120,
                xps: vec![],
            }),
        );
    }
}
