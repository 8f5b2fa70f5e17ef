//! The leaderboards: who earned the most public XP this week, this month,
//! this year and ever, overall and per language. Pure functions of their
//! inputs, with a total order (XP descending, then the username compared
//! case-insensitively, then as written), so a board is the same from the
//! same pulses whatever order ClickHouse returns rows in.
//!
//! Only public users who did not leave the leaderboards are listed
//! (`user_preferences`); a user on no board is simply absent. Periods are
//! calendar periods of UTC dates counted over the pulses' local dates:
//! this week from Monday, this month from the 1st, this year from
//! January 1st.

use ::builder::model::{LeaderEntry, Leaderboard, LeaderboardsModel, Period};
use chrono::{Datelike, NaiveDate};
use sql::rollups::UserLanguagePeriods;
use std::collections::{HashMap, HashSet};

/// Places on one board.
pub const BOARD_SIZE: usize = 100;
/// Languages with boards of their own: those with the most listed XP ever
/// (ties by name). Any name a plugin sends is a language, so their number
/// is capped, and with it the pages one rollup writes.
pub const MAX_LANGUAGE_BOARDS: usize = 100;

/// The first date of this week, month and year, for `today`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodStarts {
    pub week: NaiveDate,
    pub month: NaiveDate,
    pub year: NaiveDate,
}

impl PeriodStarts {
    pub fn of(today: NaiveDate) -> Self {
        let week =
            today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
        Self {
            week,
            month: today.with_day(1).unwrap_or(today),
            year: today.with_ordinal(1).unwrap_or(today),
        }
    }

    fn since(&self, period: Period) -> Option<NaiveDate> {
        match period {
            Period::Week => Some(self.week),
            Period::Month => Some(self.month),
            Period::Year => Some(self.year),
            Period::All => None,
        }
    }
}

/// A row's XP in `period`.
fn xp_in(row: &UserLanguagePeriods, period: Period) -> u64 {
    match period {
        Period::Week => row.xp_week,
        Period::Month => row.xp_month,
        Period::Year => row.xp_year,
        Period::All => row.xp_all,
    }
}

/// Every board. `names` are the public users (id → username); `left` the
/// users who left the leaderboards; `rows` every public user's XP per
/// language and period (names as shown).
pub fn boards(
    names: &HashMap<u64, String>,
    left: &HashSet<u64>,
    rows: &[UserLanguagePeriods],
    starts: PeriodStarts,
) -> LeaderboardsModel {
    let listed: Vec<&UserLanguagePeriods> = rows
        .iter()
        .filter(|r| names.contains_key(&r.user_id) && !left.contains(&r.user_id))
        .collect();

    let mut language_totals: HashMap<&str, u64> = HashMap::new();
    for r in &listed {
        *language_totals.entry(r.language.as_str()).or_default() += r.xp_all;
    }
    let mut languages: Vec<(&str, u64)> = language_totals
        .into_iter()
        .filter(|(_, xp)| *xp > 0)
        .collect();
    languages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    languages.truncate(MAX_LANGUAGE_BOARDS);

    let mut boards = Vec::with_capacity((languages.len() + 1) * Period::ALL.len());
    for period in Period::ALL {
        let mut overall: HashMap<u64, u64> = HashMap::new();
        for r in &listed {
            *overall.entry(r.user_id).or_default() += xp_in(r, period);
        }
        boards.push(Leaderboard {
            period,
            language: None,
            since: starts.since(period),
            entries: ranked(names, overall),
        });
    }
    for (language, _) in &languages {
        for period in Period::ALL {
            let xp: HashMap<u64, u64> = listed
                .iter()
                .filter(|r| r.language == *language)
                .map(|r| (r.user_id, xp_in(r, period)))
                .collect();
            boards.push(Leaderboard {
                period,
                language: Some((*language).to_owned()),
                since: starts.since(period),
                entries: ranked(names, xp),
            });
        }
    }
    LeaderboardsModel { boards }
}

/// The board of `xp` (user id → XP): users with XP, best first, ranked
/// (equal XP, equal rank), the first [`BOARD_SIZE`].
fn ranked(names: &HashMap<u64, String>, xp: HashMap<u64, u64>) -> Vec<LeaderEntry> {
    let mut entries: Vec<(u64, &str, String)> = xp
        .into_iter()
        .filter(|(_, xp)| *xp > 0)
        .filter_map(|(id, xp)| {
            let name = names.get(&id)?;
            Some((xp, name.as_str(), sql::names::fold(name)))
        })
        .collect();
    entries.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.2.cmp(&b.2))
            .then_with(|| a.1.cmp(b.1))
    });
    entries.truncate(BOARD_SIZE);
    let mut out: Vec<LeaderEntry> = Vec::with_capacity(entries.len());
    for (i, (xp, name, _)) in entries.into_iter().enumerate() {
        let rank = match out.last() {
            Some(prev) if prev.xp == xp => prev.rank,
            _ => i as u32 + 1,
        };
        out.push(LeaderEntry {
            rank,
            username: name.to_owned(),
            xp,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user_id: u64, language: &str, all: u64, week: u64) -> UserLanguagePeriods {
        UserLanguagePeriods {
            user_id,
            language: language.into(),
            xp_all: all,
            xp_year: all,
            xp_month: week,
            xp_week: week,
        }
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn period_starts() {
        // 2026-11-26 is a Thursday.
        let s = PeriodStarts::of(date("2026-11-26"));
        assert_eq!(s.week, date("2026-11-23"));
        assert_eq!(s.month, date("2026-11-01"));
        assert_eq!(s.year, date("2026-01-01"));
        assert_eq!(
            PeriodStarts::of(date("2026-11-23")).week,
            date("2026-11-23")
        );
    }

    #[test]
    fn order_ties_ranks_and_who_is_left_out() {
        let names: HashMap<u64, String> = [
            (1, "bob"),
            (2, "Alice"),
            (3, "carol"),
            (4, "dave"),
            (5, "erin"),
        ]
        .into_iter()
        .map(|(id, n)| (id, n.to_owned()))
        .collect();
        let left: HashSet<u64> = [4].into();
        let rows = vec![
            row(1, "Rust", 100, 10),
            row(2, "Rust", 60, 0),
            row(2, "Go", 40, 10),
            row(3, "Go", 50, 5),
            row(4, "Rust", 1000, 1000),
            // not public: not in `names`
            row(9, "Rust", 5000, 5000),
            row(5, "Zig", 0, 0),
        ];
        let m = boards(&names, &left, &rows, PeriodStarts::of(date("2026-11-26")));
        let board = |p: Period, l: Option<&str>| {
            m.boards
                .iter()
                .find(|b| b.period == p && b.language.as_deref() == l)
                .unwrap()
                .entries
                .iter()
                .map(|e| (e.rank, e.username.as_str(), e.xp))
                .collect::<Vec<_>>()
        };
        // Alice and bob tie at 100: the name decides, case-insensitively.
        assert_eq!(
            board(Period::All, None),
            vec![(1, "Alice", 100), (1, "bob", 100), (3, "carol", 50)]
        );
        assert_eq!(
            board(Period::Week, None),
            vec![(1, "Alice", 10), (1, "bob", 10), (3, "carol", 5)]
        );
        assert_eq!(
            board(Period::All, Some("Go")),
            vec![(1, "carol", 50), (2, "Alice", 40)]
        );
        assert_eq!(board(Period::Week, Some("Rust")), vec![(1, "bob", 10)]);
        // No board for a language without XP, nor for one only a user who
        // left has.
        assert!(
            m.boards
                .iter()
                .all(|b| b.language.as_deref() != Some("Zig"))
        );
        assert_eq!(m.boards.len(), 4 * 3);
        for b in &m.boards {
            assert!(b.entries.iter().all(|e| e.username != "dave"));
        }
        let week = m.boards.iter().find(|b| b.period == Period::Week).unwrap();
        assert_eq!(week.since, Some(date("2026-11-23")));
    }

    #[test]
    fn boards_and_languages_are_capped() {
        let names: HashMap<u64, String> =
            (1..=300).map(|id| (id, format!("user{id:03}"))).collect();
        let rows: Vec<_> = (1..=300u64)
            .map(|id| row(id, &format!("lang{id:03}"), id, id))
            .chain((1..=300u64).map(|id| row(id, "Rust", 7, 7)))
            .collect();
        let m = boards(
            &names,
            &HashSet::new(),
            &rows,
            PeriodStarts::of(date("2026-11-26")),
        );
        let languages: HashSet<_> = m.boards.iter().filter_map(|b| b.language.clone()).collect();
        assert_eq!(languages.len(), MAX_LANGUAGE_BOARDS);
        assert!(languages.contains("Rust"));
        let all = &m
            .boards
            .iter()
            .find(|b| b.language.is_none())
            .unwrap()
            .entries;
        assert_eq!(all.len(), BOARD_SIZE);
        assert_eq!(all[0].username, "user300");
        let rust = m
            .boards
            .iter()
            .find(|b| b.language.as_deref() == Some("Rust"))
            .unwrap();
        assert!(rust.entries.iter().all(|e| e.rank == 1));
        assert_eq!(rust.entries[0].username, "user001");
    }
}
