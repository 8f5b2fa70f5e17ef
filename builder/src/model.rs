//! The builder's only input: plain data filled by the rollup jobs.
//!
//! Units, everywhere in this module:
//! - XP is a count of keystrokes-ish points, `u64`;
//! - instants are **unix seconds** (`i64`, UTC);
//! - dates are the **user's local** calendar dates ([`NaiveDate`], serialized
//!   `"YYYY-MM-DD"`), as Code::Stats' read API reports them;
//! - "new" XP is XP earned during the **last 12 hours** before
//!   [`SiteModel::generated_at`].
//!
//! Private users never appear in a model: the jobs leave them out, and the
//! builder renders exactly what it is given (it filters nothing).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::level;

/// Everything one build renders.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SiteModel {
    /// When the jobs computed these numbers, unix seconds. Shown on pages;
    /// fixed in tests so output is deterministic.
    pub generated_at: i64,
    pub front: FrontPageModel,
    /// Public users, any order (pages are keyed by name).
    pub profiles: Vec<ProfileModel>,
    /// Languages with public XP, any order (listed by total XP).
    pub languages: Vec<LanguageModel>,
    /// The leaderboards: public users who did not leave them.
    #[serde(default)]
    pub leaderboards: LeaderboardsModel,
}

/// What a leaderboard counts: XP on local dates from the start of this
/// week (Monday), this month, this year (UTC calendar, `since`), or ever.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Week,
    Month,
    Year,
    All,
}

impl Period {
    /// Every period, in the order pages list them.
    pub const ALL: [Period; 4] = [Period::Week, Period::Month, Period::Year, Period::All];

    /// The path segment and JSON name: `week`, `month`, `year`, `all`.
    pub fn slug(self) -> &'static str {
        match self {
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
            Period::All => "all",
        }
    }
}

/// Every leaderboard of one build.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LeaderboardsModel {
    /// One board per period and language: overall boards (`language:
    /// None`) for every period, and per-language boards for the languages
    /// the jobs chose (the most public XP ever), any order.
    pub boards: Vec<Leaderboard>,
}

/// One leaderboard: who earned the most XP in a period, overall or in one
/// language.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Leaderboard {
    pub period: Period,
    /// `None`: every language.
    pub language: Option<String>,
    /// The first local date counted; `None` for all time.
    pub since: Option<NaiveDate>,
    /// Best first: XP descending, ties by username (case-insensitive, then
    /// as written); at most the jobs' board size. Users with no XP in the
    /// period are left out.
    pub entries: Vec<LeaderEntry>,
}

/// A place on a leaderboard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderEntry {
    /// 1-based; equal XP shares a rank (1, 2, 2, 4).
    pub rank: u32,
    pub username: String,
    pub xp: u64,
}

/// A name with an amount of XP: a language, a user, a machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedXp {
    pub name: String,
    pub xp: u64,
}

impl NamedXp {
    pub fn new(name: impl Into<String>, xp: u64) -> Self {
        Self {
            name: name.into(),
            xp,
        }
    }
}

/// XP on one date.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct DailyXp {
    pub date: NaiveDate,
    pub xp: u64,
}

/// XP during one minute.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct MinuteXp {
    /// Start of the minute, unix seconds (a multiple of 60).
    pub minute: i64,
    pub xp: u64,
}

/// The front page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FrontPageModel {
    /// All public XP ever.
    pub total_xp: u64,
    /// Number of public users.
    pub users: u64,
    /// Languages by XP over the last 7 days, largest first.
    pub top_languages_week: Vec<NamedXp>,
    /// Public XP per minute over the last 4 hours, oldest first; minutes
    /// without XP may be left out (they are drawn as 0).
    pub xp_per_minute: Vec<MinuteXp>,
    /// Users by XP over the last 7 days, largest first (`name` = username).
    pub most_active_week: Vec<NamedXp>,
    /// Most recent sign-ups, newest first.
    pub newest_users: Vec<NewUser>,
}

/// A recently created user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    /// Account creation date (UTC).
    pub since: NaiveDate,
}

/// XP in one language for one user, with its level.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LanguageXp {
    pub name: String,
    pub xp: u64,
    /// XP in the last 12 hours.
    pub new_xp: u64,
    /// [`level::level`] of `xp`.
    pub level: u32,
    /// [`level::progress_percent`] of `xp`, 0 ≤ p < 100.
    pub progress: f64,
}

impl LanguageXp {
    /// Fills `level` and `progress` from `xp` with the Code::Stats formula.
    pub fn new(name: impl Into<String>, xp: u64, new_xp: u64) -> Self {
        Self {
            name: name.into(),
            xp,
            new_xp,
            level: level::level(xp),
            progress: level::progress_percent(xp),
        }
    }
}

/// XP sent from one machine of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MachineXp {
    pub name: String,
    pub xp: u64,
    /// XP in the last 12 hours.
    pub new_xp: u64,
}

/// XP per language on one date (one bar of "last 14 days").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DayLanguages {
    pub date: NaiveDate,
    /// Languages with XP that day, any order.
    pub languages: Vec<NamedXp>,
}

/// One public user's profile page and read-API JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileModel {
    pub username: String,
    /// Account creation date (UTC).
    pub user_since: NaiveDate,
    /// The user's local date "now" (at `generated_at`): the last day of the
    /// year grid and of "last 14 days", and the reference for streaks.
    pub today: NaiveDate,
    /// Instant of the latest pulse, unix seconds; `None` before the first.
    pub last_programmed: Option<i64>,
    pub total_xp: u64,
    /// XP in the last 12 hours.
    pub new_xp: u64,
    /// [`level::level`] of `total_xp`.
    pub level: u32,
    /// [`level::progress_percent`] of `total_xp`, 0 ≤ p < 100.
    pub progress: f64,
    /// Sorted by XP descending, then name ascending ([`sort_languages`]).
    pub languages: Vec<LanguageXp>,
    /// Machines that sent XP, by XP descending.
    pub machines: Vec<MachineXp>,
    /// XP per local date, whole history, ascending, days without XP left
    /// out. Feeds the year grid and the read API's `"dates"`.
    pub daily: Vec<DailyXp>,
    /// The 14 local dates ending at `today`, oldest first.
    pub last_14_days: Vec<DayLanguages>,
    /// XP by local hour of day, 0 = 00:00–00:59.
    pub hours: [u64; 24],
    /// XP by local day of week, Monday first.
    pub weekdays: [u64; 7],
    /// Consecutive days with XP ending today (or yesterday, while today is
    /// still empty).
    pub current_streak: u32,
    /// Longest run of consecutive days with XP.
    pub longest_streak: u32,
    /// Total XP divided by days since the first day with XP (inclusive).
    pub xp_per_day_average: f64,
    /// Time coded, from WakaTime heartbeats (all zero without them).
    #[serde(default)]
    pub coding: CodingTime,
}

/// Time coded by a user, derived from heartbeats with the keystroke
/// timeout (`sql::coding`). Projects, branches, files and machine labels
/// are private and never part of it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CodingTime {
    pub total_seconds: u64,
    /// By seconds descending, then name.
    pub languages: Vec<NamedSeconds>,
    /// By seconds descending, then name.
    pub editors: Vec<NamedSeconds>,
    /// Seconds per local date, ascending, days without time left out.
    pub daily: Vec<DailySeconds>,
}

/// A language or editor with the seconds coded in it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedSeconds {
    pub name: String,
    pub seconds: u64,
}

/// Seconds coded on one local date.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct DailySeconds {
    pub date: NaiveDate,
    pub seconds: u64,
}

/// One language's page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LanguageModel {
    pub name: String,
    /// Public XP in this language, ever.
    pub total_xp: u64,
    /// Public users with XP in it.
    pub users: u64,
    /// Public XP per UTC date, ascending, days without XP may be left out.
    pub xp_per_day: Vec<DailyXp>,
    /// Top public users by XP in it, largest first (`name` = username).
    pub top_users: Vec<NamedXp>,
    /// Public time coded in it, seconds (from heartbeats).
    #[serde(default)]
    pub coding_seconds: u64,
}

/// Sorts languages the way profiles list them: XP descending, then name.
pub fn sort_languages(languages: &mut [LanguageXp]) {
    languages.sort_by(|a, b| b.xp.cmp(&a.xp).then_with(|| a.name.cmp(&b.name)));
}
