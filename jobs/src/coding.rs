//! Coding time in the models: each user's time from their heartbeats
//! (`sql::coding` turns heartbeats into durations), and the public time
//! per language for the language pages.
//!
//! The rollups keep every public user's time per language between runs
//! ([`Totals`]): a run reads the heartbeats of the users it computes, and
//! the language pages sum what is kept, so an incremental run never reads
//! every user's heartbeats.

use builder::model::{CodingTime, DailySeconds, NamedSeconds};
use sql::coding::CodingRow;
use std::collections::{BTreeMap, HashMap};

use crate::compute::date_of_day;

/// Each user's coding time from their duration rows (any order).
pub fn per_user(rows: &[CodingRow]) -> HashMap<u64, CodingTime> {
    #[derive(Default)]
    struct Sums<'a> {
        total: u64,
        languages: BTreeMap<&'a str, u64>,
        editors: BTreeMap<&'a str, u64>,
        days: BTreeMap<u16, u64>,
    }
    let mut users: HashMap<u64, Sums<'_>> = HashMap::new();
    for row in rows {
        let sums = users.entry(row.user_id).or_default();
        sums.total += row.millis;
        *sums.languages.entry(&row.language).or_default() += row.millis;
        *sums.editors.entry(&row.editor).or_default() += row.millis;
        *sums.days.entry(row.local_date).or_default() += row.millis;
    }
    users
        .into_iter()
        .map(|(user_id, sums)| {
            let named = |map: BTreeMap<&str, u64>| -> Vec<NamedSeconds> {
                let mut items: Vec<NamedSeconds> = map
                    .into_iter()
                    .map(|(name, millis)| NamedSeconds {
                        name: name.to_owned(),
                        seconds: millis / 1000,
                    })
                    .filter(|n| n.seconds > 0)
                    .collect();
                items.sort_by(|a, b| b.seconds.cmp(&a.seconds).then_with(|| a.name.cmp(&b.name)));
                items
            };
            let coding = CodingTime {
                total_seconds: sums.total / 1000,
                languages: named(sums.languages),
                editors: named(sums.editors),
                daily: sums
                    .days
                    .into_iter()
                    .filter(|(_, millis)| *millis >= 1000)
                    .map(|(day, millis)| DailySeconds {
                        date: date_of_day(i32::from(day)),
                        seconds: millis / 1000,
                    })
                    .collect(),
            };
            (user_id, coding)
        })
        .collect()
}

/// Every public user's seconds per language, kept between runs.
#[derive(Debug, Default)]
pub struct Totals {
    by_user: HashMap<u64, Vec<NamedSeconds>>,
}

impl Totals {
    /// Replaces what is known of the users a run computed (`None`: no
    /// coding time).
    pub fn update<'a>(
        &mut self,
        computed: impl IntoIterator<Item = (u64, Option<&'a CodingTime>)>,
    ) {
        for (user_id, coding) in computed {
            match coding.filter(|c| !c.languages.is_empty()) {
                Some(c) => self.by_user.insert(user_id, c.languages.clone()),
                None => self.by_user.remove(&user_id),
            };
        }
    }

    /// Forgets everyone but `public`.
    pub fn retain(&mut self, public: impl Fn(u64) -> bool) {
        self.by_user.retain(|id, _| public(*id));
    }

    /// Public seconds per language.
    pub fn per_language(&self) -> HashMap<&str, u64> {
        let mut out: HashMap<&str, u64> = HashMap::new();
        for languages in self.by_user.values() {
            for l in languages {
                *out.entry(l.name.as_str()).or_default() += l.seconds;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user_id: u64, day: u16, language: &str, editor: &str, millis: u64) -> CodingRow {
        CodingRow {
            user_id,
            local_date: day,
            language: language.into(),
            project: "p".into(),
            editor: editor.into(),
            os: "Linux".into(),
            machine: "m".into(),
            category: "coding".into(),
            millis,
        }
    }

    #[test]
    fn sums_per_user_language_editor_and_day() {
        let rows = [
            row(1, 20_000, "Rust", "Vim", 120_000),
            row(1, 20_000, "Go", "Vim", 60_000),
            row(1, 20_001, "Rust", "VS Code", 30_500),
            row(2, 20_000, "Go", "Emacs", 999),
        ];
        let users = per_user(&rows);
        let one = &users[&1];
        assert_eq!(one.total_seconds, 210);
        assert_eq!(
            one.languages,
            [
                NamedSeconds {
                    name: "Rust".into(),
                    seconds: 150
                },
                NamedSeconds {
                    name: "Go".into(),
                    seconds: 60
                }
            ]
        );
        assert_eq!(one.editors[0].name, "Vim");
        assert_eq!(one.daily.len(), 2);
        assert_eq!(one.daily[1].seconds, 30);
        // Under a second is nothing to show.
        assert_eq!(users[&2].total_seconds, 0);
        assert!(users[&2].languages.is_empty());

        let mut totals = Totals::default();
        totals.update(users.iter().map(|(id, c)| (*id, Some(c))));
        assert_eq!(totals.per_language()["Rust"], 150);
        totals.retain(|id| id != 1);
        assert!(totals.per_language().is_empty());
    }
}
