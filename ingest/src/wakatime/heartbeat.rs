//! A heartbeat as WakaTime clients send it, checked one by one: in a bulk
//! request every item gets its own answer, so one bad heartbeat never
//! refuses (and re-queues) the others.

use crate::limits::{MAX_HEARTBEAT_AGE, MAX_HEARTBEAT_FIELD_CHARS, MAX_HEARTBEAT_FUTURE};
use serde::Deserialize;
use serde_json::Value;

/// The language of a heartbeat that names none.
pub const UNKNOWN_LANGUAGE: &str = "Other";

pub const INVALID_TIME: &str = "time must be Unix seconds";
pub const FUTURE_TIME: &str = "time is in the future";
pub const INVALID_HEARTBEAT: &str = "a heartbeat must be a JSON object with a time";
pub const FIELD_TOO_LONG: &str = "a field of the heartbeat is too long";

/// The fields codestats keeps, as sent (unknown ones are ignored; numbers
/// and booleans are taken in the spellings clients use).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Incoming {
    pub time: Value,
    pub entity: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub category: Option<String>,
    pub project: Option<String>,
    pub branch: Option<String>,
    pub language: Option<String>,
    pub is_write: Value,
    pub lines: Value,
    pub line_additions: Value,
    pub line_deletions: Value,
    pub lineno: Value,
    pub cursorpos: Value,
    pub user_agent: Option<String>,
}

/// A heartbeat that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Unix milliseconds.
    pub time_ms: u64,
    pub entity: String,
    pub kind: String,
    pub category: String,
    pub project: String,
    pub branch: String,
    pub language: String,
    pub is_write: bool,
    pub lines: u32,
    pub line_additions: u32,
    pub line_deletions: u32,
    pub lineno: u32,
    pub cursorpos: u32,
    pub user_agent: Option<String>,
}

/// Where a checked heartbeat is stored, and what the request (or export)
/// says about it beyond its own fields.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub user_id: u64,
    pub machine_id: u64,
    pub editor: String,
    pub os: String,
    pub machine: &'a str,
    pub utc_offset: i16,
    pub store_entity: bool,
}

impl Checked {
    /// The row to store, its id computed: the entity hashed (and kept only
    /// when the operator opted in).
    pub fn into_row(self, origin: Origin<'_>) -> sql::heartbeats::HeartbeatRow {
        let user_id = origin.user_id;
        let mut row = sql::heartbeats::HeartbeatRow {
            heartbeat_id: 0,
            batch_id: 0,
            user_id,
            machine_id: origin.machine_id,
            time: (self.time_ms / 1000) as u32,
            time_ms: (self.time_ms % 1000) as u16,
            utc_offset: origin.utc_offset,
            entity_hash: sql::heartbeats::entity_hash(user_id, &self.entity),
            entity: if origin.store_entity {
                self.entity
            } else {
                String::new()
            },
            kind: self.kind,
            category: self.category,
            project: self.project,
            branch: self.branch,
            language: self.language,
            is_write: u8::from(self.is_write),
            lines: self.lines,
            line_additions: self.line_additions,
            line_deletions: self.line_deletions,
            lineno: self.lineno,
            cursorpos: self.cursorpos,
            editor: origin.editor,
            os: origin.os,
            machine: origin.machine.to_owned(),
            received_at: 0,
        };
        row.heartbeat_id = sql::heartbeats::heartbeat_id(&row);
        row
    }
}

/// What becomes of one item.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Keep(Box<Checked>),
    /// Older than [`MAX_HEARTBEAT_AGE`]: answered 201, not stored.
    TooOld,
    Invalid(&'static str),
}

/// Checks one item of a request against the clock `now_ms` (Unix ms).
pub fn check(item: Value, now_ms: u64) -> Verdict {
    check_with(item, now_ms, Some(MAX_HEARTBEAT_AGE))
}

/// [`check`] with the age past which heartbeats are dropped (`None`: kept
/// whatever their age, as imports of history are).
pub fn check_with(item: Value, now_ms: u64, max_age: Option<std::time::Duration>) -> Verdict {
    if !item.is_object() {
        return Verdict::Invalid(INVALID_HEARTBEAT);
    }
    let Ok(incoming) = serde_json::from_value::<Incoming>(item) else {
        return Verdict::Invalid(INVALID_HEARTBEAT);
    };
    let Some(time_ms) = time_millis(&incoming.time) else {
        return Verdict::Invalid(INVALID_TIME);
    };
    if time_ms > now_ms + MAX_HEARTBEAT_FUTURE.as_millis() as u64 {
        return Verdict::Invalid(FUTURE_TIME);
    }
    if max_age.is_some_and(|age| time_ms + (age.as_millis() as u64) < now_ms) {
        return Verdict::TooOld;
    }
    let text = |value: Option<String>, default: &str| -> Option<String> {
        let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
        let value = if value.is_empty() {
            default.to_owned()
        } else {
            value
        };
        (value.chars().count() <= MAX_HEARTBEAT_FIELD_CHARS).then_some(value)
    };
    // The entity is a path or URL; it is hashed, but still bounded.
    let entity = incoming.entity.unwrap_or_default();
    if entity.chars().count() > 4 * MAX_HEARTBEAT_FIELD_CHARS {
        return Verdict::Invalid(FIELD_TOO_LONG);
    }
    let language = match incoming.language.as_deref().map(str::trim) {
        None | Some("") => Some(UNKNOWN_LANGUAGE),
        Some(name) => sql::names::normalize_language(name),
    };
    let (Some(kind), Some(category), Some(project), Some(branch), Some(language), Some(user_agent)) = (
        text(incoming.kind, "file"),
        text(incoming.category, "coding"),
        text(incoming.project, ""),
        text(incoming.branch, ""),
        language,
        incoming
            .user_agent
            .map(|ua| text(Some(ua), "").map(Some))
            .unwrap_or(Some(None)),
    ) else {
        return Verdict::Invalid(FIELD_TOO_LONG);
    };
    Verdict::Keep(Box::new(Checked {
        time_ms,
        entity,
        kind,
        category,
        project,
        branch,
        language: language.to_owned(),
        is_write: truthy(&incoming.is_write),
        lines: count(&incoming.lines),
        line_additions: count(&incoming.line_additions),
        line_deletions: count(&incoming.line_deletions),
        lineno: count(&incoming.lineno),
        cursorpos: count(&incoming.cursorpos),
        user_agent: user_agent.filter(|ua| !ua.is_empty()),
    }))
}

/// Unix seconds (a number or a numeric string, fractions allowed, or an
/// RFC 3339 time) as
/// milliseconds; `None` unless a real time after 1970 and before 2106.
fn time_millis(value: &Value) -> Option<u64> {
    let secs = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(secs) => secs,
            // RFC 3339, as Wakapi writes times.
            Err(_) => {
                let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
                t.timestamp_millis() as f64 / 1000.0
            }
        },
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0 && secs < f64::from(u32::MAX)).then_some((secs * 1000.0) as u64)
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => matches!(s.trim(), "true" | "True" | "1"),
        _ => false,
    }
}

/// A non-negative count, 0 when absent or not a number.
fn count(value: &Value) -> u32 {
    let n = match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    };
    if n.is_finite() && n > 0.0 {
        n.min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_795_636_000_000;

    fn keep(item: Value) -> Checked {
        match check(item, NOW) {
            Verdict::Keep(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_python_client_sends() {
        let c = keep(json!({
            "time": 1795635914.817, "entity": "/home/me/src/main.rs", "type": "file",
            "category": null, "is_write": true, "project": null, "branch": null,
            "language": "Rust", "dependencies": [], "lines": 1, "lineno": null,
            "cursorpos": null, "user_agent": "wakatime/13.1.0 vim/9.0 vim-wakatime/11.0.0"
        }));
        assert_eq!(c.time_ms, 1_795_635_914_817);
        assert_eq!((c.kind.as_str(), c.category.as_str()), ("file", "coding"));
        assert_eq!(
            (c.language.as_str(), c.is_write, c.lines),
            ("Rust", true, 1)
        );
        assert_eq!((c.lineno, c.cursorpos, c.project.as_str()), (0, 0, ""));
    }

    #[test]
    fn spellings_clients_use() {
        let c =
            keep(json!({"time": "1795635914", "is_write": "true", "lines": "12", "language": ""}));
        assert_eq!(
            keep(json!({"time": "2026-11-25T16:25:14.817Z"})).time_ms,
            1_795_623_914_817
        );
        assert_eq!(
            (c.time_ms, c.is_write, c.lines),
            (1_795_635_914_000, true, 12)
        );
        assert_eq!(c.language, UNKNOWN_LANGUAGE);
        assert_eq!(keep(json!({"time": 1795635914, "lines": -3})).lines, 0);
    }

    #[test]
    fn refusals_and_drops() {
        for (item, verdict) in [
            (json!([1]), Verdict::Invalid(INVALID_HEARTBEAT)),
            (json!({}), Verdict::Invalid(INVALID_TIME)),
            (json!({"time": "soon"}), Verdict::Invalid(INVALID_TIME)),
            (json!({"time": -1}), Verdict::Invalid(INVALID_TIME)),
            (json!({"time": 1e300}), Verdict::Invalid(INVALID_TIME)),
            (
                json!({"time": NOW / 1000 + 86_400}),
                Verdict::Invalid(FUTURE_TIME),
            ),
            (json!({"time": 1_000_000_000}), Verdict::TooOld),
            (
                json!({"time": NOW / 1000, "project": "x".repeat(MAX_HEARTBEAT_FIELD_CHARS + 1)}),
                Verdict::Invalid(FIELD_TOO_LONG),
            ),
        ] {
            assert_eq!(check(item.clone(), NOW), verdict, "{item}");
        }
    }
}
