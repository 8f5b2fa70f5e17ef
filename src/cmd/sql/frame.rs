//! ClickHouse's `JSONCompact` answer as a Polars frame, each column typed
//! after its ClickHouse type.
//!
//! | ClickHouse | Polars |
//! | --- | --- |
//! | `UInt8`, `UInt16`, `UInt32` | `UInt32` (Polars is built without 8/16-bit types) |
//! | `Int8`, `Int16`, `Int32` | `Int32` |
//! | `UInt64`, `Int64`, `Float32`, `Float64`, `Bool` | the same |
//! | `Date` | `Date` |
//! | `DateTime`, `DateTime64` | `Datetime(ms)`, no time zone (the server's, UTC) |
//! | `Decimal(…)` | `Float64` |
//! | `String`, `FixedString`, `UUID`, `Enum`, 128/256-bit integers | `String` |
//! | anything else (`Array`, `Tuple`, …) | `String` holding the value as JSON |
//!
//! `Nullable(T)` and `LowCardinality(T)` read as `T`, with nulls. ClickHouse
//! writes NaN and infinities as `null`.

use anyhow::{Context, anyhow, bail};
use chrono::{NaiveDate, NaiveDateTime};
use polars::prelude::{
    Column, DataFrame, DataType, IntoColumn, NamedFrom, PlSmallStr, Series, TimeUnit,
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Answer {
    meta: Vec<Meta>,
    data: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    UInt32,
    UInt64,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Date,
    DateTime,
    Text,
    Json,
}

fn kind(ty: &str) -> Kind {
    for wrapper in ["Nullable(", "LowCardinality("] {
        if let Some(inner) = ty.strip_prefix(wrapper).and_then(|t| t.strip_suffix(')')) {
            return kind(inner);
        }
    }
    match ty {
        "UInt8" | "UInt16" | "UInt32" => Kind::UInt32,
        "UInt64" => Kind::UInt64,
        "Int8" | "Int16" | "Int32" => Kind::Int32,
        "Int64" => Kind::Int64,
        "Float32" => Kind::Float32,
        "Float64" => Kind::Float64,
        "Bool" => Kind::Bool,
        "Date" | "Date32" => Kind::Date,
        "String" | "UUID" | "IPv4" | "IPv6" | "Int128" | "Int256" | "UInt128" | "UInt256" => {
            Kind::Text
        }
        t if t.starts_with("DateTime") => Kind::DateTime,
        t if t.starts_with("Decimal") => Kind::Float64,
        t if t.starts_with("FixedString(") || t.starts_with("Enum") => Kind::Text,
        "Nothing" => Kind::Text,
        _ => Kind::Json,
    }
}

/// The frame of a `JSONCompact` answer.
pub fn from_json_compact(bytes: &[u8]) -> anyhow::Result<DataFrame> {
    let answer: Answer = serde_json::from_slice(bytes).with_context(|| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        format!(
            "cannot read clickhouse's answer as JSONCompact (a FORMAT clause in the query \
             is not supported: use --format); it starts with {start:?}"
        )
    })?;
    let height = answer.data.len();
    let columns = answer
        .meta
        .iter()
        .enumerate()
        .map(|(i, meta)| {
            let cells = answer
                .data
                .iter()
                .map(move |row| row.get(i).unwrap_or(&Value::Null));
            column(&meta.name, kind(&meta.ty), cells)
                .with_context(|| format!("cannot read column {} ({})", meta.name, meta.ty))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(DataFrame::new(height, columns)?)
}

fn column<'a>(
    name: &str,
    kind: Kind,
    cells: impl Iterator<Item = &'a Value>,
) -> anyhow::Result<Column> {
    let name = PlSmallStr::from(name);
    let series = match kind {
        Kind::UInt32 => Series::new(name, typed(cells, integer::<u32>)?),
        Kind::UInt64 => Series::new(name, typed(cells, integer::<u64>)?),
        Kind::Int32 => Series::new(name, typed(cells, integer::<i32>)?),
        Kind::Int64 => Series::new(name, typed(cells, integer::<i64>)?),
        Kind::Float32 => Series::new(name, typed(cells, |v| float(v).map(|f| f as f32))?),
        Kind::Float64 => Series::new(name, typed(cells, float)?),
        Kind::Bool => Series::new(name, typed(cells, boolean)?),
        Kind::Date => Series::new(name, typed(cells, date)?).cast(&DataType::Date)?,
        Kind::DateTime => Series::new(name, typed(cells, datetime_ms)?)
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?,
        Kind::Text => Series::new(name, typed(cells, text)?),
        Kind::Json => Series::new(name, typed(cells, |v| Ok(v.to_string()))?),
    };
    Ok(series.into_column())
}

/// Each cell read by `read`; JSON `null` is a missing value.
fn typed<'a, T>(
    cells: impl Iterator<Item = &'a Value>,
    read: impl Fn(&Value) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<Option<T>>> {
    cells
        .enumerate()
        .map(|(row, cell)| match cell {
            Value::Null => Ok(None),
            cell => read(cell)
                .map(Some)
                .with_context(|| format!("row {}: {cell}", row + 1)),
        })
        .collect()
}

/// A number, or (64-bit integers are quoted) a string holding one.
fn integer<T: std::str::FromStr + TryFrom<i128>>(v: &Value) -> anyhow::Result<T> {
    let wide: i128 = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .ok_or_else(|| anyhow!("not a whole number"))?,
        Value::String(s) => s.parse().context("not a whole number")?,
        _ => bail!("not a whole number"),
    };
    T::try_from(wide).map_err(|_| anyhow!("out of range"))
}

fn float(v: &Value) -> anyhow::Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| anyhow!("not a number")),
        Value::String(s) => s.parse().context("not a number"),
        _ => bail!("not a number"),
    }
}

fn boolean(v: &Value) -> anyhow::Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_u64() != Some(0)),
        _ => bail!("not a boolean"),
    }
}

fn text(v: &Value) -> anyhow::Result<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn as_str(v: &Value) -> anyhow::Result<&str> {
    v.as_str().ok_or_else(|| anyhow!("not a string"))
}

/// Days since 1970-01-01. 18.16 writes that day itself as `0000-00-00`.
fn date(v: &Value) -> anyhow::Result<i32> {
    let s = as_str(v)?;
    if s == "0000-00-00" {
        return Ok(0);
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").context("not a date")?;
    Ok((day - NaiveDate::default()).num_days() as i32)
}

/// Milliseconds since the epoch, the text read as UTC.
fn datetime_ms(v: &Value) -> anyhow::Result<i64> {
    let s = as_str(v)?;
    if s.starts_with("0000-00-00 00:00:00") {
        return Ok(0);
    }
    let at = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").context("not a datetime")?;
    Ok(at.and_utc().timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One column of type `ty` holding `cells` (JSON) reads as `expected`.
    fn check(ty: &str, cells: &str, expected: Series) {
        let json = format!(
            r#"{{"meta":[{{"name":"c","type":"{ty}"}}],"data":[{}],"rows":2}}"#,
            serde_json::from_str::<Vec<Value>>(cells)
                .unwrap()
                .iter()
                .map(|v| format!("[{v}]"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let df = from_json_compact(json.as_bytes()).unwrap();
        let got = df.column("c").unwrap().as_materialized_series().clone();
        assert!(
            got.equals_missing(&expected) && got.dtype() == expected.dtype(),
            "{ty}: {got:?} != {expected:?}"
        );
    }

    macro_rules! s {
        ($values:expr) => {
            Series::new("c".into(), $values)
        };
    }

    #[test]
    fn types_map_to_polars() {
        check("UInt8", "[1, null]", s!([Some(1u32), None]));
        check(
            "UInt64",
            r#"["18446744073709551615", "0"]"#,
            s!([u64::MAX, 0]),
        );
        check("Int16", "[-3, 7]", s!([-3i32, 7]));
        check("UInt32", "[4294967295, 0]", s!([u32::MAX, 0]));
        check("Int64", r#"["-9223372036854775808", 1]"#, s!([i64::MIN, 1]));
        check("Nullable(Float64)", "[1.5, null]", s!([Some(1.5f64), None]));
        check("Float32", "[0.25, 2]", s!([0.25f32, 2.0]));
        check("Decimal(9, 2)", "[1.50, 2]", s!([1.5f64, 2.0]));
        check("Bool", "[true, false]", s!([true, false]));
        check("String", r#"["a,\"b\"", ""]"#, s!(["a,\"b\"", ""]));
        check("LowCardinality(String)", r#"["x", "y"]"#, s!(["x", "y"]));
        check("FixedString(2)", r#"["ab", "cd"]"#, s!(["ab", "cd"]));
        check("Array(UInt8)", r#"[[1,2], []]"#, s!(["[1,2]", "[]"]));
        check(
            "Tuple(UInt8, String)",
            r#"[[1,"a"], [2,"b"]]"#,
            s!([r#"[1,"a"]"#, r#"[2,"b"]"#]),
        );
        check(
            "Date",
            r#"["0000-00-00", "2024-03-01"]"#,
            s!([0i32, 19783]).cast(&DataType::Date).unwrap(),
        );
        check(
            "DateTime('UTC')",
            r#"["1970-01-01 00:00:01", "2024-03-01 10:00:00"]"#,
            s!([1_000i64, 1_709_287_200_000])
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .unwrap(),
        );
        check(
            "DateTime64(3)",
            r#"["0000-00-00 00:00:00.000", "1970-01-01 00:00:00.250"]"#,
            s!([0i64, 250])
                .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))
                .unwrap(),
        );
    }

    #[test]
    fn bad_answers_fail_clearly() {
        let err = from_json_compact(b"\"a\"\n1\n").unwrap_err();
        assert!(format!("{err:#}").contains("FORMAT clause"), "{err:#}");
        let err = from_json_compact(
            br#"{"meta":[{"name":"n","type":"UInt32"}],"data":[[4294967296]],"rows":1}"#,
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "cannot read column n (UInt32): row 1: 4294967296: out of range"
        );
    }

    #[test]
    fn empty_answers_keep_their_columns() {
        let df = from_json_compact(
            br#"{"meta":[{"name":"a","type":"UInt64"},{"name":"b","type":"Date"}],"data":[],"rows":0}"#,
        )
        .unwrap();
        assert_eq!(df.shape(), (0, 2));
        assert_eq!(df.dtypes(), [DataType::UInt64, DataType::Date]);
    }
}
