//! The numbers behind every page, computed with Polars from the aggregates
//! ClickHouse returns. Pure functions of their inputs, deterministic
//! (every list has a total order, ties broken by name), so their outputs
//! can be compared and snapshot-tested.

use ::builder::{
    level,
    model::{
        DailyXp, DayLanguages, FrontPageModel, LanguageModel, LanguageXp, MachineXp, MinuteXp,
        NamedXp, NewUser, ProfileModel, sort_languages,
    },
};
use chrono::{DateTime, Datelike, NaiveDate};
use polars::prelude::*;
use sql::rollups::{HourXp, LanguageDayXp, LastPulse, MachineXpRow, RecentXp, UserLanguageXp};
use std::collections::{BTreeMap, HashMap};

/// How many users and languages lists on the front and language pages hold.
pub const TOP_N: usize = 10;
/// Days in "the last 14 days" chart.
pub const RECENT_DAYS: i32 = 14;
/// "This week": the last 7 local dates, today included.
pub const WEEK_DAYS: i32 = 7;
/// The front page's activity graph covers this many seconds.
pub const XP_PER_MINUTE_WINDOW_SECS: i64 = 4 * 3600;
/// XP coded within this window counts as "new".
pub const NEW_XP_WINDOW_SECS: i64 = 12 * 3600;

/// A user as the rollups know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub user_id: u64,
    pub username: String,
    /// Unix seconds.
    pub created_at: u32,
}

/// Everything [`profiles`] reads, for a set of users.
#[derive(Debug, Default)]
pub struct ProfileInputs {
    pub language_days: Vec<LanguageDayXp>,
    pub machines: Vec<MachineXpRow>,
    pub machine_names: HashMap<u64, String>,
    pub hours: Vec<HourXp>,
    /// XP since `now - NEW_XP_WINDOW_SECS`.
    pub recent: Vec<RecentXp>,
    pub last: Vec<LastPulse>,
}

pub fn date_of_day(day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(day + 719_163).unwrap_or_default()
}

pub fn day_of_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

fn utc_date(secs: i64) -> NaiveDate {
    DateTime::from_timestamp(secs, 0)
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// The user's local date at `now`, from the offset of their latest pulse.
pub fn local_today(now: i64, offset_minutes: i16) -> NaiveDate {
    utc_date(now + i64::from(offset_minutes) * 60)
}

fn frame(rows: &[LanguageDayXp]) -> PolarsResult<DataFrame> {
    df!(
        "user_id" => rows.iter().map(|r| r.user_id).collect::<Vec<_>>(),
        "language" => rows.iter().map(|r| r.language.as_str()).collect::<Vec<_>>(),
        "day" => rows.iter().map(|r| i32::from(r.local_date)).collect::<Vec<_>>(),
        "xp" => rows.iter().map(|r| r.xp).collect::<Vec<_>>(),
    )
}

/// Rows of a frame as (user_id, key, xp), the key a string column.
fn user_str_xp(df: &DataFrame, key: &str) -> PolarsResult<Vec<(u64, String, u64)>> {
    let users = df.column("user_id")?.u64()?;
    let keys = df.column(key)?.str()?;
    let xps = df.column("xp")?.u64()?;
    Ok((0..df.height())
        .map(|i| {
            (
                users.get(i).unwrap_or_default(),
                keys.get(i).unwrap_or_default().to_owned(),
                xps.get(i).unwrap_or_default(),
            )
        })
        .collect())
}

/// Profiles of `users` (public ones only: the caller decides who is shown).
pub fn profiles(
    users: &[UserInfo],
    inputs: &ProfileInputs,
    now: i64,
) -> PolarsResult<Vec<ProfileModel>> {
    let df = frame(&inputs.language_days)?;
    let last: HashMap<u64, &LastPulse> = inputs.last.iter().map(|l| (l.user_id, l)).collect();
    let today_of =
        |user_id: u64| local_today(now, last.get(&user_id).map(|l| l.utc_offset).unwrap_or(0));

    // Per language totals and per day totals, with Polars.
    let by_language = df
        .clone()
        .lazy()
        .group_by([col("user_id"), col("language")])
        .agg([col("xp").sum()])
        .collect()?;
    let by_day = df
        .clone()
        .lazy()
        .group_by([col("user_id"), col("day")])
        .agg([col("xp").sum()])
        .sort(["user_id", "day"], SortMultipleOptions::default())
        .collect()?;
    // The last 14 local days of each user, by language.
    let todays = df!(
        "user_id" => users.iter().map(|u| u.user_id).collect::<Vec<_>>(),
        "today" => users.iter().map(|u| day_of_date(today_of(u.user_id))).collect::<Vec<_>>(),
    )?;
    let recent_days = df
        .lazy()
        .join(
            todays.lazy(),
            [col("user_id")],
            [col("user_id")],
            JoinArgs::new(JoinType::Inner),
        )
        .filter(
            col("day")
                .gt(col("today") - lit(RECENT_DAYS))
                .and(col("day").lt_eq(col("today"))),
        )
        .collect()?;

    let mut languages: HashMap<u64, Vec<(String, u64)>> = HashMap::new();
    for (user, language, xp) in user_str_xp(&by_language, "language")? {
        languages.entry(user).or_default().push((language, xp));
    }
    let mut daily: HashMap<u64, Vec<DailyXp>> = HashMap::new();
    {
        let u = by_day.column("user_id")?.u64()?;
        let d = by_day.column("day")?.i32()?;
        let x = by_day.column("xp")?.u64()?;
        for i in 0..by_day.height() {
            daily
                .entry(u.get(i).unwrap_or_default())
                .or_default()
                .push(DailyXp {
                    date: date_of_day(d.get(i).unwrap_or_default()),
                    xp: x.get(i).unwrap_or_default(),
                });
        }
    }
    let mut last_14: HashMap<(u64, i32), Vec<NamedXp>> = HashMap::new();
    {
        let u = recent_days.column("user_id")?.u64()?;
        let d = recent_days.column("day")?.i32()?;
        let l = recent_days.column("language")?.str()?;
        let x = recent_days.column("xp")?.u64()?;
        for i in 0..recent_days.height() {
            last_14
                .entry((u.get(i).unwrap_or_default(), d.get(i).unwrap_or_default()))
                .or_default()
                .push(NamedXp::new(
                    l.get(i).unwrap_or_default(),
                    x.get(i).unwrap_or_default(),
                ));
        }
    }
    let mut hours: HashMap<u64, [u64; 24]> = HashMap::new();
    for h in &inputs.hours {
        hours.entry(h.user_id).or_insert([0; 24])[usize::from(h.local_hour.min(23))] += h.xp;
    }
    let mut machines: HashMap<u64, BTreeMap<String, (u64, u64)>> = HashMap::new();
    let machine_name = |id: u64| {
        inputs
            .machine_names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("machine {id}"))
    };
    for m in &inputs.machines {
        machines
            .entry(m.user_id)
            .or_default()
            .entry(machine_name(m.machine_id))
            .or_default()
            .0 += m.xp;
    }
    let mut new_by_language: HashMap<(u64, &str), u64> = HashMap::new();
    let mut new_total: HashMap<u64, u64> = HashMap::new();
    for r in &inputs.recent {
        *new_by_language
            .entry((r.user_id, r.language.as_str()))
            .or_default() += r.xp;
        *new_total.entry(r.user_id).or_default() += r.xp;
        machines
            .entry(r.user_id)
            .or_default()
            .entry(machine_name(r.machine_id))
            .or_default()
            .1 += r.xp;
    }

    let mut out = Vec::with_capacity(users.len());
    for user in users {
        let id = user.user_id;
        let today = today_of(id);
        let mut langs: Vec<LanguageXp> = languages
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, xp)| {
                let new_xp = new_by_language
                    .get(&(id, name.as_str()))
                    .copied()
                    .unwrap_or(0);
                LanguageXp::new(name, xp, new_xp)
            })
            .collect();
        sort_languages(&mut langs);
        let total_xp: u64 = langs.iter().map(|l| l.xp).sum();
        let days = daily.remove(&id).unwrap_or_default();
        let dates: Vec<NaiveDate> = days.iter().filter(|d| d.xp > 0).map(|d| d.date).collect();
        let (current_streak, longest_streak) = crate::streaks::streaks(&dates, today);
        let mut weekdays = [0u64; 7];
        for d in &days {
            weekdays[d.date.weekday().num_days_from_monday() as usize] += d.xp;
        }
        let xp_per_day_average = match days.first() {
            Some(first) => {
                let span = (today - first.date).num_days().max(0) + 1;
                total_xp as f64 / span as f64
            }
            None => 0.0,
        };
        let today_day = day_of_date(today);
        let last_14_days = ((today_day - RECENT_DAYS + 1)..=today_day)
            .map(|day| {
                let mut languages = last_14.remove(&(id, day)).unwrap_or_default();
                languages.sort_by(|a, b| b.xp.cmp(&a.xp).then_with(|| a.name.cmp(&b.name)));
                DayLanguages {
                    date: date_of_day(day),
                    languages,
                }
            })
            .collect();
        let mut machine_list: Vec<MachineXp> = machines
            .remove(&id)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, (xp, new_xp))| MachineXp { name, xp, new_xp })
            .collect();
        machine_list.sort_by(|a, b| b.xp.cmp(&a.xp).then_with(|| a.name.cmp(&b.name)));
        out.push(ProfileModel {
            username: user.username.clone(),
            user_since: utc_date(i64::from(user.created_at)),
            today,
            last_programmed: last.get(&id).map(|l| i64::from(l.coded_at)),
            total_xp,
            new_xp: new_total.get(&id).copied().unwrap_or(0),
            level: level::level(total_xp),
            progress: level::progress_percent(total_xp),
            languages: langs,
            machines: machine_list,
            daily: days,
            last_14_days,
            hours: hours.get(&id).copied().unwrap_or([0; 24]),
            weekdays,
            current_streak,
            longest_streak,
            xp_per_day_average,
            coding: Default::default(),
        });
    }
    out.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(out)
}

/// Everything [`shared`] reads: public XP only.
#[derive(Debug, Default)]
pub struct SharedInputs {
    /// Public XP per user and language, all time.
    pub user_languages: Vec<UserLanguageXp>,
    /// The same for the last [`WEEK_DAYS`] days.
    pub user_languages_week: Vec<UserLanguageXp>,
    /// Public XP per language and local date.
    pub language_days: Vec<sql::rollups::GlobalLanguageDay>,
    /// Public XP per minute (start, xp) over the last 4 hours.
    pub xp_per_minute: Vec<(u32, u64)>,
}

fn user_language_frame(rows: &[UserLanguageXp]) -> PolarsResult<DataFrame> {
    df!(
        "user_id" => rows.iter().map(|r| r.user_id).collect::<Vec<_>>(),
        "language" => rows.iter().map(|r| r.language.as_str()).collect::<Vec<_>>(),
        "xp" => rows.iter().map(|r| r.xp).collect::<Vec<_>>(),
    )
}

/// Sorts by XP descending, then name, and keeps the first `n`.
fn top(mut items: Vec<NamedXp>, n: usize) -> Vec<NamedXp> {
    items.sort_by(|a, b| b.xp.cmp(&a.xp).then_with(|| a.name.cmp(&b.name)));
    items.truncate(n);
    items
}

/// The front page and the language pages. `public` are all public users.
pub fn shared(
    public: &[UserInfo],
    inputs: &SharedInputs,
) -> PolarsResult<(FrontPageModel, Vec<LanguageModel>)> {
    let names: HashMap<u64, &str> = public
        .iter()
        .map(|u| (u.user_id, u.username.as_str()))
        .collect();
    let all = user_language_frame(&inputs.user_languages)?;
    let week = user_language_frame(&inputs.user_languages_week)?;

    let language_totals = all
        .clone()
        .lazy()
        .group_by([col("language")])
        .agg([col("xp").sum(), col("user_id").n_unique().alias("users")])
        .collect()?;
    let user_week = week
        .clone()
        .lazy()
        .group_by([col("user_id")])
        .agg([col("xp").sum()])
        .collect()?;
    let language_week = week
        .lazy()
        .group_by([col("language")])
        .agg([col("xp").sum()])
        .collect()?;

    let mut front = FrontPageModel {
        total_xp: inputs.user_languages.iter().map(|r| r.xp).sum(),
        users: public.len() as u64,
        top_languages_week: vec![],
        xp_per_minute: inputs
            .xp_per_minute
            .iter()
            .map(|&(minute, xp)| MinuteXp {
                minute: i64::from(minute),
                xp,
            })
            .collect(),
        most_active_week: vec![],
        newest_users: vec![],
    };
    {
        let l = language_week.column("language")?.str()?;
        let x = language_week.column("xp")?.u64()?;
        front.top_languages_week = top(
            (0..language_week.height())
                .map(|i| NamedXp::new(l.get(i).unwrap_or_default(), x.get(i).unwrap_or_default()))
                .collect(),
            TOP_N,
        );
        let u = user_week.column("user_id")?.u64()?;
        let x = user_week.column("xp")?.u64()?;
        front.most_active_week = top(
            (0..user_week.height())
                .filter_map(|i| {
                    let name = names.get(&u.get(i)?)?;
                    Some(NamedXp::new(*name, x.get(i).unwrap_or_default()))
                })
                .collect(),
            TOP_N,
        );
    }
    let mut newest: Vec<&UserInfo> = public.iter().collect();
    newest.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.username.cmp(&b.username))
    });
    front.newest_users = newest
        .into_iter()
        .take(TOP_N)
        .map(|u| NewUser {
            username: u.username.clone(),
            since: utc_date(i64::from(u.created_at)),
        })
        .collect();

    // Language pages.
    let mut per_day: HashMap<&str, Vec<DailyXp>> = HashMap::new();
    for row in &inputs.language_days {
        per_day
            .entry(row.language.as_str())
            .or_default()
            .push(DailyXp {
                date: date_of_day(i32::from(row.local_date)),
                xp: row.xp,
            });
    }
    let mut top_users: HashMap<&str, Vec<NamedXp>> = HashMap::new();
    for row in &inputs.user_languages {
        if let Some(name) = names.get(&row.user_id) {
            top_users
                .entry(row.language.as_str())
                .or_default()
                .push(NamedXp::new(*name, row.xp));
        }
    }
    let l = language_totals.column("language")?.str()?;
    let x = language_totals.column("xp")?.u64()?;
    let n = language_totals.column("users")?.cast(&DataType::UInt64)?;
    let n = n.u64()?;
    let mut languages = Vec::with_capacity(language_totals.height());
    for i in 0..language_totals.height() {
        let name = l.get(i).unwrap_or_default();
        let mut days = per_day.remove(name).unwrap_or_default();
        days.sort_by_key(|d| d.date);
        languages.push(LanguageModel {
            name: name.to_owned(),
            total_xp: x.get(i).unwrap_or_default(),
            users: n.get(i).unwrap_or_default(),
            xp_per_day: days,
            top_users: top(top_users.remove(name).unwrap_or_default(), TOP_N),
            coding_seconds: 0,
        });
    }
    languages.sort_by(|a, b| {
        b.total_xp
            .cmp(&a.total_xp)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok((front, languages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sql::rollups::GlobalLanguageDay;

    // 2024-03-01T12:00:00Z, a Friday.
    const NOW: i64 = 1_709_294_400;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn day(s: &str) -> u16 {
        day_of_date(date(s)) as u16
    }

    fn user(id: u64, name: &str, created: &str) -> UserInfo {
        UserInfo {
            user_id: id,
            username: name.into(),
            created_at: date(created)
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp() as u32,
        }
    }

    fn lang_day(user_id: u64, language: &str, d: &str, xp: u64) -> LanguageDayXp {
        LanguageDayXp {
            user_id,
            language: language.into(),
            local_date: day(d),
            xp,
        }
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(date_of_day(0), date("1970-01-01"));
        assert_eq!(day_of_date(date("2024-03-01")), 19783);
        assert_eq!(local_today(NOW, 14 * 60), date("2024-03-02"));
        assert_eq!(local_today(NOW - 13 * 3600, -12 * 60), date("2024-02-29"));
    }

    #[test]
    fn profile_of_a_user_and_of_an_empty_one() {
        let users = [
            user(1, "alice", "2024-01-15"),
            user(2, "empty", "2024-02-01"),
        ];
        let inputs = ProfileInputs {
            language_days: vec![
                lang_day(1, "Rust", "2024-02-29", 100),
                lang_day(1, "Rust", "2024-03-01", 50),
                lang_day(1, "Go", "2024-03-01", 30),
                // Someone else's rows never leak in.
                lang_day(3, "Go", "2024-03-01", 999),
            ],
            machines: vec![
                MachineXpRow {
                    user_id: 1,
                    machine_id: 10,
                    xp: 120,
                },
                MachineXpRow {
                    user_id: 1,
                    machine_id: 11,
                    xp: 60,
                },
            ],
            machine_names: [(10, "laptop".to_owned()), (11, "desk".to_owned())].into(),
            hours: vec![
                HourXp {
                    user_id: 1,
                    local_hour: 9,
                    xp: 100,
                },
                HourXp {
                    user_id: 1,
                    local_hour: 23,
                    xp: 80,
                },
            ],
            recent: vec![RecentXp {
                user_id: 1,
                machine_id: 10,
                language: "Rust".into(),
                xp: 50,
            }],
            last: vec![LastPulse {
                user_id: 1,
                coded_at: (NOW - 100) as u32,
                utc_offset: 0,
            }],
        };
        let profiles = profiles(&users, &inputs, NOW).unwrap();
        let alice = &profiles[0];
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.today, date("2024-03-01"));
        assert_eq!(alice.user_since, date("2024-01-15"));
        assert_eq!(alice.last_programmed, Some(NOW - 100));
        assert_eq!((alice.total_xp, alice.new_xp, alice.level), (180, 50, 0));
        assert_eq!(
            alice.languages,
            vec![
                LanguageXp::new("Rust", 150, 50),
                LanguageXp::new("Go", 30, 0)
            ]
        );
        assert_eq!(
            alice.machines,
            vec![
                MachineXp {
                    name: "laptop".into(),
                    xp: 120,
                    new_xp: 50
                },
                MachineXp {
                    name: "desk".into(),
                    xp: 60,
                    new_xp: 0
                },
            ]
        );
        assert_eq!(
            alice.daily,
            vec![
                DailyXp {
                    date: date("2024-02-29"),
                    xp: 100
                },
                DailyXp {
                    date: date("2024-03-01"),
                    xp: 80
                },
            ]
        );
        assert_eq!(alice.last_14_days.len(), 14);
        assert_eq!(alice.last_14_days[0].date, date("2024-02-17"));
        assert_eq!(
            alice.last_14_days[13],
            DayLanguages {
                date: date("2024-03-01"),
                languages: vec![NamedXp::new("Rust", 50), NamedXp::new("Go", 30)]
            }
        );
        assert_eq!(alice.hours[9], 100);
        assert_eq!(alice.hours[23], 80);
        // Thursday and Friday.
        assert_eq!(alice.weekdays, [0, 0, 0, 100, 80, 0, 0]);
        assert_eq!((alice.current_streak, alice.longest_streak), (2, 2));
        assert_eq!(alice.xp_per_day_average, 90.0);

        let empty = &profiles[1];
        assert_eq!(
            (empty.total_xp, empty.new_xp, empty.level, empty.progress),
            (0, 0, 0, 0.0)
        );
        assert!(empty.languages.is_empty() && empty.machines.is_empty() && empty.daily.is_empty());
        assert_eq!(empty.last_programmed, None);
        assert_eq!(
            (
                empty.current_streak,
                empty.longest_streak,
                empty.xp_per_day_average
            ),
            (0, 0, 0.0)
        );
        assert!(empty.last_14_days.iter().all(|d| d.languages.is_empty()));
    }

    #[test]
    fn levels_at_their_boundaries() {
        let users = [user(1, "lvl", "2024-01-01")];
        for (xp, expected_level) in [(0, 0), (1_599, 0), (1_600, 1), (6_399, 1), (6_400, 2)] {
            let inputs = ProfileInputs {
                language_days: vec![lang_day(1, "Rust", "2024-03-01", xp)],
                ..Default::default()
            };
            let p = &profiles(&users, &inputs, NOW).unwrap()[0];
            assert_eq!(p.level, expected_level, "{xp}");
            assert_eq!(p.languages[0].level, expected_level, "{xp}");
        }
    }

    #[test]
    fn front_page_and_language_pages() {
        let public = [user(1, "alice", "2024-01-15"), user(2, "bob", "2024-02-20")];
        let ul = |user_id, language: &str, xp| UserLanguageXp {
            user_id,
            language: language.into(),
            xp,
        };
        let inputs = SharedInputs {
            user_languages: vec![ul(1, "Rust", 150), ul(1, "Go", 30), ul(2, "Rust", 10)],
            user_languages_week: vec![ul(1, "Rust", 50), ul(2, "Rust", 10), ul(2, "Go", 60)],
            language_days: vec![
                GlobalLanguageDay {
                    language: "Rust".into(),
                    local_date: day("2024-02-29"),
                    xp: 100,
                    users: 1,
                },
                GlobalLanguageDay {
                    language: "Rust".into(),
                    local_date: day("2024-03-01"),
                    xp: 60,
                    users: 2,
                },
                GlobalLanguageDay {
                    language: "Go".into(),
                    local_date: day("2024-03-01"),
                    xp: 30,
                    users: 1,
                },
            ],
            xp_per_minute: vec![((NOW - 60) as u32, 7)],
        };
        let (front, languages) = shared(&public, &inputs).unwrap();
        assert_eq!((front.total_xp, front.users), (190, 2));
        assert_eq!(
            front.top_languages_week,
            vec![NamedXp::new("Go", 60), NamedXp::new("Rust", 60)]
        );
        assert_eq!(
            front.most_active_week,
            vec![NamedXp::new("bob", 70), NamedXp::new("alice", 50)]
        );
        assert_eq!(front.newest_users[0].username, "bob");
        assert_eq!(
            front.xp_per_minute,
            vec![MinuteXp {
                minute: NOW - 60,
                xp: 7
            }]
        );
        assert_eq!(languages.len(), 2);
        assert_eq!(
            (
                languages[0].name.as_str(),
                languages[0].total_xp,
                languages[0].users
            ),
            ("Rust", 160, 2)
        );
        assert_eq!(
            languages[0].top_users,
            vec![NamedXp::new("alice", 150), NamedXp::new("bob", 10)]
        );
        assert_eq!(languages[0].xp_per_day.len(), 2);
        assert_eq!(
            (
                languages[1].name.as_str(),
                languages[1].total_xp,
                languages[1].users
            ),
            ("Go", 30, 1)
        );
    }
}
