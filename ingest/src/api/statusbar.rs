//! `GET …/users/current/statusbar/today` and `GET …/users/current/summaries`:
//! the key's owner's coding time in WakaTime's shape, for editor status
//! bars and `wakatime --today`. Read from `heartbeats` at request time
//! (one user, a few days: a narrow read of the primary key), so it
//! includes heartbeats shipped a second ago.
//!
//! Days are the coder's local days: the `TimeZone` header or `?timezone=`
//! names the zone "today" is taken in, else the offset of their latest
//! heartbeat.

use super::heartbeats::{KeyQuery, authenticate};
use crate::{AppState, error::AppError, wakatime};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::HeaderMap,
};
use chrono::{Days, NaiveDate};
use serde::Deserialize;
use serde_json::{Value, json};
use sql::{coding::CodingRow, rollups::Users};
use std::collections::BTreeMap;

/// Most days one summaries request covers (400 above).
pub const MAX_SUMMARY_DAYS: u64 = 366;

pub const BAD_RANGE: &str = "start and end must be dates (YYYY-MM-DD), start not after end, at most 366 days apart; or range=today|yesterday|last_7_days|last_30_days";

#[derive(Debug, Default, Deserialize)]
pub struct SummaryQuery {
    pub start: Option<String>,
    pub end: Option<String>,
    pub range: Option<String>,
    pub timezone: Option<String>,
}

pub async fn today(
    State(app): State<AppState>,
    key: Result<Query<KeyQuery>, QueryRejection>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    let owner = authenticate(&app, &headers, &key).await?;
    let zone_name = zone_name(&headers, &query);
    let today = local_today(&app, owner.user_id, &headers, &query).await?;
    let days = coding_days(&app, owner.user_id, today, today).await?;
    let day = day_summary(
        today,
        days.get(&today).map(Vec::as_slice).unwrap_or(&[]),
        &zone_name,
    );
    Ok(Json(json!({
        "data": day,
        "cached_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })))
}

pub async fn summaries(
    State(app): State<AppState>,
    key: Result<Query<KeyQuery>, QueryRejection>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    let owner = authenticate(&app, &headers, &key).await?;
    let Ok(Query(params)) = &query else {
        return Err(AppError::BadRequest(BAD_RANGE));
    };
    let zone_name = zone_name(&headers, &query);
    let today = local_today(&app, owner.user_id, &headers, &query).await?;
    let (start, end) = range(params, today).ok_or(AppError::BadRequest(BAD_RANGE))?;
    let days = coding_days(&app, owner.user_id, start, end).await?;
    let mut data = Vec::new();
    let mut total_millis = 0u64;
    let mut day = start;
    while day <= end {
        let rows = days.get(&day).map(Vec::as_slice).unwrap_or(&[]);
        total_millis += rows.iter().map(|r| r.millis).sum::<u64>();
        data.push(day_summary(day, rows, &zone_name));
        day = day + Days::new(1);
    }
    let n_days = data.len().max(1) as u64;
    Ok(Json(json!({
        "data": data,
        "start": start.format("%Y-%m-%d").to_string(),
        "end": end.format("%Y-%m-%d").to_string(),
        "cumulative_total": total(total_millis / 1000),
        "daily_average": total(total_millis / 1000 / n_days),
    })))
}

/// `start`/`end`, or a named range, ending today at the latest.
fn range(params: &SummaryQuery, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let (start, end) = match (&params.start, &params.end, params.range.as_deref()) {
        (Some(start), Some(end), _) => (date(start, today)?, date(end, today)?),
        (_, _, Some(named)) => {
            let back = |n: u64| today.checked_sub_days(Days::new(n));
            match named.to_ascii_lowercase().replace(' ', "_").as_str() {
                "today" => (today, today),
                "yesterday" => (back(1)?, back(1)?),
                "last_7_days" => (back(6)?, today),
                "last_30_days" => (back(29)?, today),
                _ => return None,
            }
        }
        _ => return None,
    };
    let span = (end - start).num_days();
    (span >= 0 && (span as u64) < MAX_SUMMARY_DAYS).then_some((start, end))
}

/// `2026-11-26` (or a timestamp starting with it), or `today` /
/// `yesterday` as WakaTime's clients send them.
fn date(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    match text.trim().to_ascii_lowercase().as_str() {
        "today" => Some(today),
        "yesterday" => today.checked_sub_days(Days::new(1)),
        _ => NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok(),
    }
}

fn zone_name(headers: &HeaderMap, query: &Result<Query<SummaryQuery>, QueryRejection>) -> String {
    query_zone(query)
        .or_else(|| wakatime::time_zone(headers))
        .map(|z| z.name().to_owned())
        .unwrap_or_else(|| "UTC".to_owned())
}

fn query_zone(query: &Result<Query<SummaryQuery>, QueryRejection>) -> Option<chrono_tz::Tz> {
    query
        .as_ref()
        .ok()?
        .timezone
        .as_deref()?
        .trim()
        .parse()
        .ok()
}

/// The coder's date now.
async fn local_today(
    app: &AppState,
    user_id: u64,
    headers: &HeaderMap,
    query: &Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<NaiveDate, AppError> {
    let now = chrono::Utc::now().timestamp();
    let offset = match query_zone(query).or_else(|| wakatime::time_zone(headers)) {
        Some(zone) => wakatime::utc_offset(Some(zone), now),
        None => sql::coding::latest_offset(&app.db, user_id)
            .await?
            .unwrap_or(0),
    };
    Ok(day_date(sql::coding::local_day(now, i32::from(offset))))
}

async fn coding_days(
    app: &AppState,
    user_id: u64,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<BTreeMap<NaiveDate, Vec<CodingRow>>, AppError> {
    let rows = sql::coding::durations(
        &app.db,
        &Users::Only(&[user_id]),
        date_day(start),
        date_day(end),
        app.keystroke_timeout,
    )
    .await?;
    let aliases = app.shown_names.get();
    let mut days: BTreeMap<NaiveDate, Vec<CodingRow>> = BTreeMap::new();
    for mut row in rows {
        // Summed per shown name by `day_summary`.
        aliases.show(&mut row.language);
        days.entry(day_date(row.local_date)).or_default().push(row);
    }
    Ok(days)
}

fn day_date(day: u16) -> NaiveDate {
    NaiveDate::default() + Days::new(u64::from(day))
}

fn date_day(date: NaiveDate) -> u16 {
    (date - NaiveDate::default())
        .num_days()
        .clamp(0, i64::from(u16::MAX)) as u16
}

/// One day in WakaTime's summary shape.
fn day_summary(date: NaiveDate, rows: &[CodingRow], zone: &str) -> Value {
    let millis: u64 = rows.iter().map(|r| r.millis).sum();
    let by = |key: fn(&CodingRow) -> &str| -> Vec<Value> {
        let mut sums: BTreeMap<&str, u64> = BTreeMap::new();
        for row in rows {
            *sums.entry(key(row)).or_default() += row.millis;
        }
        let mut items: Vec<(&str, u64)> = sums.into_iter().collect();
        items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        items
            .into_iter()
            .map(|(name, m)| {
                let mut item = total(m / 1000);
                item["name"] = json!(if name.is_empty() { "Unknown" } else { name });
                item["percent"] = json!(if millis == 0 {
                    0.0
                } else {
                    (m as f64 * 10_000.0 / millis as f64).round() / 100.0
                });
                item
            })
            .collect()
    };
    let day = date.format("%Y-%m-%d").to_string();
    json!({
        "grand_total": total(millis / 1000),
        "categories": by(|r| &r.category),
        "languages": by(|r| &r.language),
        "projects": by(|r| &r.project),
        "editors": by(|r| &r.editor),
        "operating_systems": by(|r| &r.os),
        "machines": by(|r| &r.machine),
        "dependencies": [],
        "range": {
            "date": day,
            "start": format!("{day}T00:00:00"),
            "end": format!("{day}T23:59:59"),
            "text": date.format("%a %b %-d %Y").to_string(),
            "timezone": zone,
        },
    })
}

/// A duration in WakaTime's fields (`text` is what status bars show).
pub fn total(seconds: u64) -> Value {
    let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
    let text = match (hours, minutes) {
        (0, 0) => "0 mins".to_owned(),
        (0, m) => format!("{m} min{}", plural(m)),
        (h, 0) => format!("{h} hr{}", plural(h)),
        (h, m) => format!("{h} hr{} {m} min{}", plural(h), plural(m)),
    };
    json!({
        "total_seconds": seconds as f64,
        "seconds": seconds,
        "hours": hours,
        "minutes": minutes,
        "digital": format!("{hours}:{minutes:02}"),
        "decimal": format!("{:.2}", seconds as f64 / 3600.0),
        "text": text,
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_wakatime_writes_them() {
        assert_eq!(total(0)["text"], "0 mins");
        assert_eq!(total(60)["text"], "1 min");
        assert_eq!(total(5400)["text"], "1 hr 30 mins");
        assert_eq!(total(7200)["text"], "2 hrs");
        assert_eq!(total(5400)["digital"], "1:30");
        assert_eq!(total(5400)["decimal"], "1.50");
    }

    #[test]
    fn ranges() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let q = |start: Option<&str>, end: Option<&str>, range: Option<&str>| SummaryQuery {
            start: start.map(Into::into),
            end: end.map(Into::into),
            range: range.map(Into::into),
            timezone: None,
        };
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            range(&q(Some("2026-11-01"), Some("2026-11-03"), None), today),
            Some((d("2026-11-01"), d("2026-11-03")))
        );
        assert_eq!(
            range(&q(None, None, Some("Last 7 Days")), today),
            Some((d("2026-11-20"), today))
        );
        assert_eq!(
            range(&q(Some("2026-11-03"), Some("2026-11-01"), None), today),
            None
        );
        assert_eq!(
            range(&q(Some("2020-01-01"), Some("2026-11-01"), None), today),
            None
        );
        assert_eq!(range(&q(Some("yesterday"), Some("x"), None), today), None);
        // What `wakatime --today` asks.
        assert_eq!(
            range(&q(Some("today"), Some("today"), None), today),
            Some((today, today))
        );
        assert_eq!(range(&q(None, None, None), today), None);
    }
}
