//! A fixture site and small helpers to read what a build wrote.
#![allow(dead_code)] // each test file uses a different part of the helpers

pub mod boards;

use boards::leaderboards;

use std::fs;
use std::path::{Path, PathBuf};

use builder::model::*;
use builder::{BuildReport, Builder};
use chrono::{Datelike as _, Duration, NaiveDate};

/// 2024-06-01T12:00:00Z
pub const GENERATED_AT: i64 = 1_717_243_200;

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A deterministic pseudo-random sequence (an LCG), so the fixture is
/// reproducible without a dependency.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

/// A profile with XP in `languages` (name, xp, new_xp) on `machines`,
/// activity on most days of the last `days` days before `today`.
pub fn profile(
    username: &str,
    languages: &[(&str, u64, u64)],
    machines: &[(&str, u64, u64)],
    days: i64,
    seed: u64,
) -> ProfileModel {
    let today = date("2024-06-01");
    let mut rng = Lcg::new(seed);
    let mut langs: Vec<LanguageXp> = languages
        .iter()
        .map(|(n, xp, new)| LanguageXp::new(*n, *xp, *new))
        .collect();
    sort_languages(&mut langs);
    let total_xp: u64 = languages.iter().map(|l| l.1).sum();
    let new_xp: u64 = languages.iter().map(|l| l.2).sum();
    let mut daily = Vec::new();
    for d in (0..days).rev() {
        if total_xp > 0 && rng.next(5) != 0 {
            daily.push(DailyXp {
                date: today - Duration::days(d),
                xp: 50 + rng.next(3000),
            });
        }
    }
    let mut last_14_days = Vec::new();
    for d in (0..14).rev() {
        let mut languages = Vec::new();
        for l in langs.iter().take(8) {
            if total_xp > 0 && rng.next(3) != 0 {
                languages.push(NamedXp::new(l.name.clone(), 10 + rng.next(800)));
            }
        }
        last_14_days.push(DayLanguages {
            date: today - Duration::days(d),
            languages,
        });
    }
    let mut hours = [0u64; 24];
    let mut weekdays = [0u64; 7];
    if total_xp > 0 {
        for (h, v) in hours.iter_mut().enumerate() {
            *v = if (8..20).contains(&h) {
                rng.next(5000)
            } else {
                rng.next(300)
            };
        }
        for v in weekdays.iter_mut() {
            *v = 1000 + rng.next(9000);
        }
    }
    let coding = coding(&langs);
    ProfileModel {
        username: username.to_owned(),
        user_since: date("2023-02-14"),
        today,
        last_programmed: (total_xp > 0).then_some(GENERATED_AT - 3600),
        total_xp,
        new_xp,
        level: builder::level::level(total_xp),
        progress: builder::level::progress_percent(total_xp),
        languages: langs,
        machines: machines
            .iter()
            .map(|(n, xp, new)| MachineXp {
                name: (*n).to_owned(),
                xp: *xp,
                new_xp: *new,
            })
            .collect(),
        daily,
        last_14_days,
        hours,
        weekdays,
        current_streak: if total_xp > 0 { 4 } else { 0 },
        longest_streak: if total_xp > 0 { 31 } else { 0 },
        xp_per_day_average: if total_xp > 0 { 1234.4 } else { 0.0 },
        coding,
    }
}

/// Time coded in the first languages (none without XP), in two editors.
fn coding(langs: &[LanguageXp]) -> CodingTime {
    let languages: Vec<NamedSeconds> = langs
        .iter()
        .filter(|l| l.xp > 0)
        .take(3)
        .enumerate()
        .map(|(i, l)| NamedSeconds {
            name: l.name.clone(),
            seconds: 9000 / (i as u64 + 1),
        })
        .collect();
    let total_seconds = languages.iter().map(|l| l.seconds).sum();
    if total_seconds == 0 {
        return CodingTime::default();
    }
    CodingTime {
        total_seconds,
        editors: vec![
            NamedSeconds {
                name: "Vim".into(),
                seconds: total_seconds - 600,
            },
            NamedSeconds {
                name: "VS Code".into(),
                seconds: 600,
            },
        ],
        languages,
        daily: vec![DailySeconds {
            date: date("2024-06-01"),
            seconds: total_seconds,
        }],
    }
}

pub fn language(name: &str, total_xp: u64, top_users: &[(&str, u64)]) -> LanguageModel {
    let mut rng = Lcg::new(total_xp);
    let start = date("2023-12-01");
    LanguageModel {
        name: name.to_owned(),
        total_xp,
        users: top_users.len() as u64,
        xp_per_day: (0..183)
            .filter(|_| rng.next(6) != 0)
            .map(|d| {
                let date = start + Duration::days(d);
                DailyXp {
                    date,
                    xp: date.num_days_from_ce() as u64 % 97 * 200,
                }
            })
            .collect(),
        top_users: top_users
            .iter()
            .map(|(n, xp)| NamedXp::new(*n, *xp))
            .collect(),
        coding_seconds: total_xp / 10,
    }
}

/// Four public users: a busy one with 12 languages (the rest list shows),
/// a dotted name, a unicode name, and one without XP (setup instructions).
pub fn fixture() -> SiteModel {
    let alice = profile(
        "alice",
        &[
            ("Rust", 812_345, 2_345),
            ("C/C++", 245_000, 120),
            ("Python", 160_000, 0),
            ("TypeScript", 99_999, 0),
            ("SQL", 45_000, 300),
            ("Markdown", 12_000, 0),
            ("Shell", 6_400, 0),
            ("YAML", 1_600, 0),
            ("TOML", 1_599, 0),
            ("C#", 900, 0),
            ("Elixir", 50, 0),
            ("Vue.js", 1, 0),
        ],
        &[("laptop", 900_000, 2_000), ("desktop", 484_894, 765)],
        420,
        1,
    );
    let bob = profile(
        "bob.builder",
        &[("Python", 30_000, 0), ("Rust", 5_000, 10)],
        &[("work", 35_000, 10)],
        60,
        2,
    );
    let nandu = profile("Ñandú", &[("Go", 7_000, 0)], &[("pi", 7_000, 0)], 20, 3);
    let newbie = profile("newbie", &[], &[], 0, 4);
    let minute0 = GENERATED_AT - 4 * 3600 + 60;
    let mut rng = Lcg::new(9);
    SiteModel {
        generated_at: GENERATED_AT,
        front: FrontPageModel {
            total_xp: 2_462_000,
            users: 4,
            top_languages_week: vec![
                NamedXp::new("Rust", 40_000),
                NamedXp::new("C/C++", 9_000),
                NamedXp::new("Python", 3_000),
            ],
            xp_per_minute: (0..240)
                .filter(|m| m % 7 != 0)
                .map(|m| MinuteXp {
                    minute: minute0 + m * 60,
                    xp: rng.next(400),
                })
                .collect(),
            most_active_week: vec![
                NamedXp::new("alice", 45_000),
                NamedXp::new("bob.builder", 7_000),
            ],
            newest_users: vec![
                NewUser {
                    username: "newbie".to_owned(),
                    since: date("2024-05-30"),
                },
                NewUser {
                    username: "Ñandú".to_owned(),
                    since: date("2024-05-01"),
                },
            ],
        },
        profiles: vec![alice, bob, nandu, newbie],
        languages: vec![
            language(
                "Rust",
                817_345,
                &[("alice", 812_345), ("bob.builder", 5_000)],
            ),
            language("C/C++", 245_000, &[("alice", 245_000)]),
            language(
                "Python",
                190_000,
                &[("alice", 160_000), ("bob.builder", 30_000)],
            ),
            language("Go", 7_000, &[("Ñandú", 7_000)]),
        ],
        leaderboards: leaderboards(),
    }
}

/// A fixed public URL so pages are deterministic.
pub const PUBLIC_URL: &str = "https://codestats.example.org";

/// Builds `site` into `<tmp>/site`; returns the tempdir, the output
/// directory and the report.
pub fn build(site: &SiteModel) -> (tempfile::TempDir, PathBuf, BuildReport) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let report = builder(&out).build(site).unwrap();
    (tmp, out, report)
}

pub fn builder(out: &Path) -> Builder {
    Builder::new(out).unwrap().with_public_url(PUBLIC_URL)
}

/// A file of the output as text.
pub fn read(out: &Path, rel: &str) -> String {
    let path = out.join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn exists(out: &Path, rel: &str) -> bool {
    out.join(rel).exists()
}

/// Every file below `dir`, relative, sorted, `/`-separated.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            assert!(!kind.is_symlink(), "symlink in output: {}", path.display());
            if kind.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The files below `dir` whose content contains `needle` (as bytes).
pub fn grep(dir: &Path, needle: &str) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|rel| {
            let bytes = fs::read(dir.join(rel)).unwrap();
            bytes
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        })
        .collect()
}

/// Text of a page with tera's entities turned back into characters.
pub fn unescape_html(text: &str) -> String {
    text.replace("&#x2F;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Parses an SVG with a strict XML parser, or panics naming the file.
pub fn parse_svg<'a>(rel: &str, text: &'a str) -> roxmltree::Document<'a> {
    roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{rel} is not well-formed XML: {e}"))
}

/// The XP per date of a year grid, from its cells' `<title>DATE: XP XP`.
pub fn grid_cells(doc: &roxmltree::Document<'_>) -> std::collections::BTreeMap<NaiveDate, u64> {
    doc.descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter_map(|rect| rect.children().find(|c| c.has_tag_name("title")))
        .map(|title| {
            let text = title.text().unwrap_or_default();
            let (day, xp) = text.split_once(": ").expect("DATE: XP XP");
            let xp = xp.strip_suffix(" XP").expect("ends in XP").replace(',', "");
            (date(day), xp.parse().expect("a number"))
        })
        .collect()
}
