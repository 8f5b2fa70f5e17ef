//! Analyst SQL: the query library (`sql/queries/*.sql`, embedded in the
//! binary) with its named parameters, and running SQL as the read-only
//! analyst.
//!
//! A library file opens with a header of `--` comment lines. The first one is
//! the query's one-line description; `@param NAME TYPE [= DEFAULT] TEXT`
//! declares a parameter (a `String` default of `''` is the empty string; no
//! default makes the parameter required); the other lines are documentation.
//! The body names a parameter as `{NAME}`. Loading turns every `{NAME}` into a
//! `?` placeholder (`toDate(?)` for a `Date`, `toDateTime(?)` for a
//! `DateTime`), and running checks each value against its declared type and
//! binds it with the `clickhouse` crate, which escapes it: user text never
//! becomes SQL text. ClickHouse 18.16 has no server-side `{name:Type}`
//! parameters, hence the client-side binding.
//!
//! Read-only is the server's business: [`Db::analyst`] connects as a user
//! whose profile has `readonly = 1`, so anything that writes or changes a
//! setting is refused by ClickHouse (Code 164) however it is spelt.

use crate::{
    db::Db,
    error::{Error, Result},
};
use chrono::{NaiveDate, NaiveDateTime};
use clickhouse::query::Query;

/// The format answers are fetched in: column names and ClickHouse types, then
/// the rows as JSON arrays. Sent as the HTTP `default_format` parameter, which
/// ClickHouse applies to the request without treating it as a setting, so
/// `readonly = 1` accepts it (18.16 and current releases); a query's own
/// `FORMAT` clause would override it and is therefore not supported.
pub const RESULT_FORMAT: &str = "JSONCompact";

/// Every query of the library: its name (the file name) and its text.
const FILES: &[(&str, &str)] = &[
    (
        "top_languages",
        include_str!("../queries/top_languages.sql"),
    ),
    (
        "daily_active_users",
        include_str!("../queries/daily_active_users.sql"),
    ),
    (
        "language_xp_per_week",
        include_str!("../queries/language_xp_per_week.sql"),
    ),
    (
        "new_user_retention",
        include_str!("../queries/new_user_retention.sql"),
    ),
    (
        "hour_of_day_by_language",
        include_str!("../queries/hour_of_day_by_language.sql"),
    ),
    (
        "main_language_switches",
        include_str!("../queries/main_language_switches.sql"),
    ),
    (
        "machines_per_user",
        include_str!("../queries/machines_per_user.sql"),
    ),
    (
        "coding_time_per_language",
        include_str!("../queries/coding_time_per_language.sql"),
    ),
    (
        "coding_time_per_day",
        include_str!("../queries/coding_time_per_day.sql"),
    ),
];

/// Oldest and newest day a ClickHouse `Date` holds.
const DATE_RANGE: (&str, &str) = ("1970-01-01", "2105-12-31");

/// The type of a library parameter, as written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `YYYY-MM-DD`.
    Date,
    /// `YYYY-MM-DD hh:mm:ss`, UTC.
    DateTime,
    UInt64,
    Int64,
    String,
}

impl ParamType {
    const ALL: [ParamType; 5] = [
        ParamType::Date,
        ParamType::DateTime,
        ParamType::UInt64,
        ParamType::Int64,
        ParamType::String,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ParamType::Date => "Date",
            ParamType::DateTime => "DateTime",
            ParamType::UInt64 => "UInt64",
            ParamType::Int64 => "Int64",
            ParamType::String => "String",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What `{NAME}` becomes in the SQL text.
    fn placeholder(self) -> &'static str {
        match self {
            ParamType::Date => "toDate(?)",
            ParamType::DateTime => "toDateTime(?)",
            ParamType::UInt64 | ParamType::Int64 | ParamType::String => "?",
        }
    }

    /// Checks `text` against the type; the message says what was expected.
    fn value(self, text: &str) -> std::result::Result<Value, String> {
        match self {
            ParamType::Date => {
                let day = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| "a Date (YYYY-MM-DD)".to_owned())?;
                let day = day.format("%Y-%m-%d").to_string();
                if day.as_str() < DATE_RANGE.0 || day.as_str() > DATE_RANGE.1 {
                    return Err(format!("a Date from {} to {}", DATE_RANGE.0, DATE_RANGE.1));
                }
                Ok(Value::Text(day))
            }
            ParamType::DateTime => {
                let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                    .map_err(|_| "a DateTime (YYYY-MM-DD hh:mm:ss, UTC)".to_owned())?;
                Ok(Value::Text(at.format("%Y-%m-%d %H:%M:%S").to_string()))
            }
            ParamType::UInt64 => text
                .parse()
                .map(Value::UInt)
                .map_err(|_| "a whole number (UInt64)".to_owned()),
            ParamType::Int64 => text
                .parse()
                .map(Value::Int)
                .map_err(|_| "a whole number (Int64)".to_owned()),
            ParamType::String => Ok(Value::Text(text.to_owned())),
        }
    }
}

/// A checked parameter value, ready to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    UInt(u64),
    Int(i64),
}

/// A parameter a library query declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    /// `None`: the parameter must be given.
    pub default: Option<String>,
    pub doc: String,
}

/// A query of the library, ready to bind.
#[derive(Debug, Clone)]
pub struct LibraryQuery {
    pub name: &'static str,
    /// The header's first line.
    pub description: String,
    /// The header's other comment lines.
    pub doc: String,
    pub params: Vec<Param>,
    /// The body with each `{NAME}` turned into its placeholder.
    template: String,
    /// For each placeholder of `template`, in order: its index in `params`.
    slots: Vec<usize>,
}

impl LibraryQuery {
    /// Reads a library file: header, then body.
    pub fn parse(name: &'static str, text: &str) -> Result<Self> {
        let invalid = |what: String| Error::Invalid(format!("library query {name}: {what}"));
        if text.contains('?') {
            // The clickhouse crate reads every `?` as a placeholder.
            return Err(invalid("`?` may not appear in a library query".into()));
        }
        let mut description = String::new();
        let mut doc = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        for line in text.lines().map(str::trim) {
            let Some(comment) = line.strip_prefix("--") else {
                if line.is_empty() {
                    continue;
                }
                break;
            };
            let comment = comment.trim();
            if let Some(decl) = comment.strip_prefix("@param") {
                let param = parse_param(decl).map_err(invalid)?;
                if params.iter().any(|p| p.name == param.name) {
                    return Err(invalid(format!("parameter {} declared twice", param.name)));
                }
                params.push(param);
            } else if description.is_empty() {
                description = comment.to_owned();
            } else {
                doc.push(comment);
            }
        }
        if description.is_empty() {
            return Err(invalid("the header has no description line".into()));
        }
        let (template, slots) = expand(text, &params).map_err(invalid)?;
        if let Some(unused) = (0..params.len()).find(|i| !slots.contains(i)) {
            return Err(invalid(format!(
                "parameter {} is declared but not used",
                params[unused].name
            )));
        }
        Ok(Self {
            name,
            description,
            doc: doc.join("\n").trim().to_owned(),
            params,
            template,
            slots,
        })
    }

    /// One value per declared parameter, in declaration order: the given one
    /// or the default, each checked against its type.
    pub fn values(&self, given: &[(String, String)]) -> Result<Vec<Value>> {
        let invalid = |what: String| Error::Invalid(format!("query {}: {what}", self.name));
        for (i, (name, _)) in given.iter().enumerate() {
            if !self.params.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                return Err(invalid(format!(
                    "unknown parameter {name:?} (it takes: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            if given[..i].iter().any(|(n, _)| n == name) {
                return Err(invalid(format!("parameter {name:?} given twice")));
            }
        }
        self.params
            .iter()
            .map(|p| {
                let text = given
                    .iter()
                    .find(|(n, _)| n == &p.name)
                    .map(|(_, v)| v.as_str())
                    .or(p.default.as_deref())
                    .ok_or_else(|| invalid(format!("parameter {} is required", p.name)))?;
                p.ty.value(text).map_err(|expected| {
                    invalid(format!("parameter {}: {text:?} is not {expected}", p.name))
                })
            })
            .collect()
    }

    /// The query on `db`'s client with every value bound.
    pub fn bind(&self, db: &Db, given: &[(String, String)]) -> Result<Query> {
        let values = self.values(given)?;
        let mut query = db.client().query(&self.template);
        for &slot in &self.slots {
            query = match &values[slot] {
                Value::Text(text) => query.bind(text.as_str()),
                Value::UInt(n) => query.bind(*n),
                Value::Int(n) => query.bind(*n),
            };
        }
        Ok(query)
    }
}

/// `NAME TYPE [= DEFAULT] TEXT` after `@param`.
fn parse_param(decl: &str) -> std::result::Result<Param, String> {
    let mut words = decl.split_whitespace().peekable();
    let name = words
        .next()
        .filter(|n| is_identifier(n))
        .ok_or_else(|| format!("bad @param line {decl:?}"))?;
    let ty = words
        .next()
        .ok_or_else(|| format!("parameter {name} has no type"))?;
    let ty = ParamType::from_name(ty).ok_or_else(|| {
        let known: Vec<&str> = ParamType::ALL.iter().map(|t| t.name()).collect();
        format!(
            "parameter {name}: unknown type {ty} (one of {})",
            known.join(", ")
        )
    })?;
    let default = if words.next_if_eq(&"=").is_some() {
        let value = words
            .next()
            .ok_or_else(|| format!("parameter {name}: `=` without a default"))?;
        let value = if value == "''" { "" } else { value };
        ty.value(value)
            .map_err(|expected| format!("parameter {name}: default {value:?} is not {expected}"))?;
        Some(value.to_owned())
    } else {
        None
    };
    Ok(Param {
        name: name.to_owned(),
        ty,
        default,
        doc: words.collect::<Vec<_>>().join(" "),
    })
}

fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces each `{NAME}` of `text` with its placeholder; returns the new
/// text and, per placeholder, the index of its parameter.
fn expand(text: &str, params: &[Param]) -> std::result::Result<(String, Vec<usize>), String> {
    let mut out = String::with_capacity(text.len());
    let mut slots = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| "`{` without a closing `}`".to_owned())?;
        let name = &after[..end];
        let index = params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| format!("{{{name}}} is not a declared parameter"))?;
        out.push_str(params[index].ty.placeholder());
        slots.push(index);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, slots))
}

/// The whole library, in the order of `sql/README.md`.
pub fn library() -> Result<Vec<LibraryQuery>> {
    FILES
        .iter()
        .map(|(name, text)| LibraryQuery::parse(name, text))
        .collect()
}

/// The library query called `name`.
pub fn find(name: &str) -> Result<LibraryQuery> {
    let Some((name, text)) = FILES.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        return Err(Error::Invalid(format!(
            "no library query {name:?} (known: {})",
            known.join(", ")
        )));
    };
    LibraryQuery::parse(name, text)
}

/// Runs `sql`, sent as written, on `db` (an [`Db::analyst`] handle) and
/// returns the answer in [`RESULT_FORMAT`].
pub async fn run_text(db: &Db, sql: &str) -> Result<Vec<u8>> {
    fetch(db.client().query_raw(sql)).await
}

/// Runs a library query with `given` parameter values on `db` and returns
/// the answer in [`RESULT_FORMAT`].
pub async fn run_library(
    db: &Db,
    query: &LibraryQuery,
    given: &[(String, String)],
) -> Result<Vec<u8>> {
    let query = query.bind(db, given)?;
    tracing::debug!(sql = %query.sql_display(), "library query");
    fetch(query).await
}

/// What ClickHouse answered when it refused or failed a query, e.g.
/// `Code: 164, … Cannot drop table in readonly mode`.
pub fn server_message(error: &Error) -> Option<&str> {
    match error {
        Error::ClickHouse(clickhouse::error::Error::BadResponse(message)) => Some(message.trim()),
        _ => None,
    }
}

async fn fetch(query: Query) -> Result<Vec<u8>> {
    let mut cursor = query.fetch_bytes(RESULT_FORMAT)?;
    Ok(cursor.collect().await?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const SAMPLE: &str = "\
-- Sample: XP of one language.
-- Longer words.
-- @param since Date = 2024-01-01 first day
-- @param lang String = '' a language, or all
-- @param top UInt64 = 5
SELECT sum(xp) FROM pulses
WHERE toDate(coded_at) >= {since} AND ({lang} = '' OR language = {lang})
LIMIT {top}
";

    /// The SQL the sample becomes with `pairs`, or the error message.
    fn check(pairs: &[(&str, &str)], expected: &str) {
        let db = Db::new("http://127.0.0.1:1", &Default::default()).unwrap();
        let query = LibraryQuery::parse("sample", SAMPLE).unwrap();
        let got = match query.bind(&db, &given(pairs)) {
            Ok(q) => q.sql_display().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(got.contains(expected), "{expected:?} not in {got:?}");
    }

    #[test]
    fn binds_typed_escaped_values() {
        check(&[], "toDate(coded_at) >= toDate('2024-01-01') AND ('' = ''");
        check(&[], "LIMIT 5");
        check(
            &[("lang", "Rust"), ("since", "2025-2-3"), ("top", "7")],
            ">= toDate('2025-02-03') AND ('Rust' = '' OR language = 'Rust')\nLIMIT 7",
        );
        check(&[("lang", "x' OR 1=1 --")], "language = 'x\\' OR 1=1 --'");
        check(&[("lang", "a\\b")], "language = 'a\\\\b'");
        check(
            &[("since", "2024-01-01' OR 1")],
            "parameter since: \"2024-01-01' OR 1\" is not a Date (YYYY-MM-DD)",
        );
        check(&[("since", "1969-12-31")], "is not a Date from 1970-01-01");
        check(&[("top", "-1")], "\"-1\" is not a whole number (UInt64)");
        check(&[("top", "1; DROP")], "is not a whole number");
        check(
            &[("nope", "1")],
            "unknown parameter \"nope\" (it takes: since, lang, top)",
        );
        check(
            &[("top", "1"), ("top", "2")],
            "parameter \"top\" given twice",
        );
    }

    #[test]
    fn reads_the_header() {
        let q = LibraryQuery::parse("sample", SAMPLE).unwrap();
        assert_eq!(q.description, "Sample: XP of one language.");
        assert_eq!(q.doc, "Longer words.");
        let params: Vec<_> = q
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.ty, p.default.as_deref(), p.doc.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("since", ParamType::Date, Some("2024-01-01"), "first day"),
                ("lang", ParamType::String, Some(""), "a language, or all"),
                ("top", ParamType::UInt64, Some("5"), ""),
            ]
        );
        assert_eq!(q.slots, [0, 1, 1, 2]);
    }

    fn check_invalid(text: &str, expected: &str) {
        let err = LibraryQuery::parse("bad", text).unwrap_err().to_string();
        assert!(err.contains(expected), "{expected:?} not in {err:?}");
    }

    #[test]
    fn refuses_bad_library_files() {
        check_invalid("SELECT 1", "no description");
        check_invalid("-- d\nSELECT ?", "`?` may not appear");
        check_invalid("-- d\nSELECT {x}", "{x} is not a declared parameter");
        check_invalid(
            "-- d\n-- @param x UInt64\nSELECT 1",
            "x is declared but not used",
        );
        check_invalid("-- d\n-- @param x Float\nSELECT {x}", "unknown type Float");
        check_invalid(
            "-- d\n-- @param x Date = soon\nSELECT {x}",
            "default \"soon\"",
        );
        check_invalid(
            "-- d\n-- @param x Int64\n-- @param x Int64\nSELECT {x}",
            "declared twice",
        );
        check_invalid("-- d\nSELECT {x", "without a closing");
    }

    #[test]
    fn required_parameters() {
        let q = LibraryQuery::parse("r", "-- d\n-- @param day Date\nSELECT {day}").unwrap();
        let err = q.values(&[]).unwrap_err().to_string();
        assert_eq!(err, "query r: parameter day is required");
        assert_eq!(
            q.values(&given(&[("day", "2024-05-06")])).unwrap(),
            [Value::Text("2024-05-06".into())]
        );
    }

    #[test]
    fn the_library_loads() {
        let library = library().unwrap();
        assert_eq!(library.len(), FILES.len());
        for query in &library {
            assert!(query.description.ends_with('.'), "{}", query.name);
            // Every default is valid, so each query runs without parameters.
            query.values(&[]).unwrap();
        }
        assert!(find("top_languages").is_ok());
        assert!(
            find("nope")
                .unwrap_err()
                .to_string()
                .contains("no library query \"nope\" (known: top_languages")
        );
    }
}
