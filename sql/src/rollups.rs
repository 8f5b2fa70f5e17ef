//! What the rollup jobs read: aggregates of `xp_hourly` (summed at insert
//! time) and of recent raw pulses, for a set of users or for all of them.
//! Language names come back as shown ([`Aliases`]), grouped by that name.

use crate::{
    db::{Db, placeholders},
    error::Result,
    languages::Aliases,
};
use clickhouse::Row;
use serde::Deserialize;

/// Which users a read covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Users<'a> {
    All,
    Only(&'a [u64]),
}

impl Users<'_> {
    /// A `WHERE` condition on `user_id` and the values to bind to it.
    pub(crate) fn condition(&self) -> (String, Vec<u64>) {
        match self {
            // Not the block markers of `xp_hourly` (user 0).
            Users::All => ("user_id != 0".to_owned(), vec![]),
            Users::Only(ids) => (
                format!("user_id IN ({})", placeholders(ids.len())),
                if ids.is_empty() {
                    vec![0]
                } else {
                    ids.to_vec()
                },
            ),
        }
    }
}

/// `template` with `{users}` the users' condition and `{language}` (which
/// must come before it) the shown language name.
fn query(
    db: &Db,
    template: &str,
    aliases: &Aliases,
    users: &Users<'_>,
) -> clickhouse::query::Query {
    let (condition, ids) = users.condition();
    let language = aliases.sql("language");
    let sql = template
        .replace("{language}", &language.expr)
        .replace("{users}", &condition);
    let mut q = language.bind(db.client().query(&sql));
    for id in ids {
        q = q.bind(id);
    }
    q
}

/// XP of a user in a language on a local date.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct LanguageDayXp {
    pub user_id: u64,
    pub language: String,
    /// Days since 1970-01-01.
    pub local_date: u16,
    pub xp: u64,
}

pub async fn language_days(
    db: &Db,
    aliases: &Aliases,
    users: &Users<'_>,
) -> Result<Vec<LanguageDayXp>> {
    Ok(query(
        db,
        "SELECT user_id, {language} AS lang, local_date, sum(xp) FROM xp_hourly WHERE {users} \
         GROUP BY user_id, lang, local_date ORDER BY user_id, local_date, lang",
        aliases,
        users,
    )
    .fetch_all()
    .await?)
}

/// XP of a user from a machine (all time).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct MachineXpRow {
    pub user_id: u64,
    pub machine_id: u64,
    pub xp: u64,
}

pub async fn machines(db: &Db, users: &Users<'_>) -> Result<Vec<MachineXpRow>> {
    Ok(query(
        db,
        "SELECT user_id, machine_id, sum(xp) FROM xp_hourly WHERE {users} \
         GROUP BY user_id, machine_id ORDER BY user_id, machine_id",
        &Aliases::default(),
        users,
    )
    .fetch_all()
    .await?)
}

/// XP of a user by local hour of day (all time).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct HourXp {
    pub user_id: u64,
    pub local_hour: u8,
    pub xp: u64,
}

pub async fn hours(db: &Db, users: &Users<'_>) -> Result<Vec<HourXp>> {
    Ok(query(
        db,
        "SELECT user_id, local_hour, sum(xp) FROM xp_hourly WHERE {users} \
         GROUP BY user_id, local_hour ORDER BY user_id, local_hour",
        &Aliases::default(),
        users,
    )
    .fetch_all()
    .await?)
}

/// XP coded since a moment, by user, machine and language (the "new" XP).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct RecentXp {
    pub user_id: u64,
    pub machine_id: u64,
    pub language: String,
    pub xp: u64,
}

pub async fn recent(
    db: &Db,
    aliases: &Aliases,
    users: &Users<'_>,
    since: u32,
) -> Result<Vec<RecentXp>> {
    let (condition, ids) = users.condition();
    let language = aliases.sql("language");
    let mut q = language.bind(db.client().query(&format!(
        "SELECT user_id, machine_id, {} AS lang, sum(xp) FROM pulses \
         WHERE coded_at >= toDateTime(?) AND {condition} \
         GROUP BY user_id, machine_id, lang ORDER BY user_id, machine_id, lang",
        language.expr
    )));
    q = q.bind(since);
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all().await?)
}

/// A user's latest pulse: when, and the offset it was sent with.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct LastPulse {
    pub user_id: u64,
    pub coded_at: u32,
    pub utc_offset: i16,
}

pub async fn last_pulses(db: &Db, users: &Users<'_>) -> Result<Vec<LastPulse>> {
    Ok(query(
        db,
        "SELECT user_id, max(coded_at), argMax(utc_offset, coded_at) FROM pulses \
         WHERE {users} GROUP BY user_id ORDER BY user_id",
        &Aliases::default(),
        users,
    )
    .fetch_all()
    .await?)
}

/// Public XP per minute since a moment (the front page's activity graph).
pub async fn public_xp_per_minute(db: &Db, since: u32) -> Result<Vec<(u32, u64)>> {
    Ok(db
        .client()
        .query(
            "SELECT toUInt32(intDiv(toUInt32(coded_at), 60) * 60) AS minute, sum(xp) FROM pulses \
             WHERE coded_at >= toDateTime(?) AND user_id IN \
                (SELECT user_id FROM users FINAL WHERE deleted = 0 AND private = 0) \
             GROUP BY minute ORDER BY minute",
        )
        .bind(since)
        .fetch_all()
        .await?)
}

/// Users whose pulses or heartbeats were received in `[since, until)`
/// (Unix seconds).
pub async fn users_received(db: &Db, since: u32, until: u32) -> Result<Vec<u64>> {
    Ok(db
        .client()
        .query(
            "SELECT DISTINCT user_id FROM ( \
                 SELECT user_id FROM pulses \
                 WHERE received_at >= toDateTime(?) AND received_at < toDateTime(?) \
                 UNION ALL \
                 SELECT user_id FROM heartbeats \
                 WHERE received_at >= toDateTime(?) AND received_at < toDateTime(?))",
        )
        .bind(since)
        .bind(until)
        .bind(since)
        .bind(until)
        .fetch_all()
        .await?)
}

/// Public XP per language and local date, all users (language pages and
/// the front page's top languages).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct GlobalLanguageDay {
    pub language: String,
    pub local_date: u16,
    pub xp: u64,
    pub users: u64,
}

pub async fn public_language_days(db: &Db, aliases: &Aliases) -> Result<Vec<GlobalLanguageDay>> {
    let language = aliases.sql("language");
    Ok(language
        .bind(db.client().query(&format!(
            "SELECT {} AS lang, local_date, sum(xp), uniqExact(user_id) FROM xp_hourly \
             WHERE user_id IN (SELECT user_id FROM users FINAL WHERE deleted = 0 AND private = 0) \
             GROUP BY lang, local_date ORDER BY lang, local_date",
            language.expr
        )))
        .fetch_all()
        .await?)
}

/// Public XP per user and language since a local date (top users of each
/// language, most active users of the week).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct UserLanguageXp {
    pub user_id: u64,
    pub language: String,
    pub xp: u64,
}

/// `since_date` is `YYYY-MM-DD`.
pub async fn public_user_languages(
    db: &Db,
    aliases: &Aliases,
    since_date: &str,
) -> Result<Vec<UserLanguageXp>> {
    let language = aliases.sql("language");
    Ok(language
        .bind(db.client().query(&format!(
            "SELECT user_id, {} AS lang, sum(xp) FROM xp_hourly \
             WHERE local_date >= toDate(?) AND user_id IN \
                (SELECT user_id FROM users FINAL WHERE deleted = 0 AND private = 0) \
             GROUP BY user_id, lang ORDER BY user_id, lang",
            language.expr
        )))
        .bind(since_date)
        .fetch_all()
        .await?)
}

/// Public XP per user and language for the leaderboards: ever, and since
/// each of three local dates (the starts of this year, month and week).
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct UserLanguagePeriods {
    pub user_id: u64,
    pub language: String,
    pub xp_all: u64,
    pub xp_year: u64,
    pub xp_month: u64,
    pub xp_week: u64,
}

/// Dates are `YYYY-MM-DD`: `[year, month, week]` starts. Every public
/// user's, all time: the all-time column is the front page's and language
/// pages' "ever" too.
pub async fn public_user_language_periods(
    db: &Db,
    aliases: &Aliases,
    starts: [&str; 3],
) -> Result<Vec<UserLanguagePeriods>> {
    let language = aliases.sql("language");
    let mut q = language.bind(db.client().query(&format!(
        "SELECT user_id, {} AS lang, sum(xp), \
             sumIf(xp, local_date >= toDate(?)), sumIf(xp, local_date >= toDate(?)), \
             sumIf(xp, local_date >= toDate(?)) \
         FROM xp_hourly WHERE user_id IN \
            (SELECT user_id FROM users FINAL WHERE deleted = 0 AND private = 0) \
         GROUP BY user_id, lang ORDER BY user_id, lang",
        language.expr
    )));
    for start in starts {
        q = q.bind(start);
    }
    Ok(q.fetch_all().await?)
}
