//! Template contexts: one `Serialize` view per page, built from the models.
//! Everything a template shows is computed here; templates only lay it out.

use chrono::DateTime;
use serde::Serialize;

use crate::embed::EmbedView;
use crate::leaderboards::PeriodLink;
use crate::model::{
    CodingTime, FrontPageModel, LanguageModel, LanguageXp, MachineXp, NamedSeconds, NamedXp,
    Period, ProfileModel, SiteModel,
};
use crate::{level, text};

/// Languages shown with a level bar on a profile; the rest are listed.
pub const TOP_LANGUAGES: usize = 10;

/// Site-wide values every page gets as `site`.
#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub name: String,
    /// Base URL plugins send to, e.g. `https://codestats.example.org`.
    pub public_url: String,
    /// `generated_at` as `YYYY-MM-DD HH:MM UTC`.
    pub generated: String,
    /// `generated_at` as RFC 3339, for `<time datetime>`.
    pub generated_iso: String,
}

fn utc(secs: i64) -> (String, String) {
    match DateTime::from_timestamp(secs, 0) {
        Some(t) => (
            t.format("%Y-%m-%d %H:%M UTC").to_string(),
            t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        None => (String::new(), String::new()),
    }
}

/// A width for a CSS bar, in percent with one decimal.
fn width(percent: f64) -> String {
    format!("{:.1}", percent.clamp(0.0, 100.0))
}

impl SiteView {
    pub fn new(name: &str, public_url: &str, site: &SiteModel) -> Self {
        let (generated, generated_iso) = utc(site.generated_at);
        Self {
            name: name.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            generated,
            generated_iso,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub name: String,
    pub xp: u64,
    /// Share of the largest entry of the list, for a bar width.
    pub width: String,
}

fn bars(entries: &[NamedXp]) -> Vec<Bar> {
    let max = entries.iter().map(|e| e.xp).max().unwrap_or(0).max(1);
    entries
        .iter()
        .map(|e| Bar {
            name: e.name.clone(),
            xp: e.xp,
            width: width(e.xp as f64 / max as f64 * 100.0),
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct NewUserView {
    pub username: String,
    pub since: String,
}

#[derive(Debug, Serialize)]
pub struct FrontView {
    pub site: SiteView,
    pub total_xp: u64,
    pub users: u64,
    pub top_languages_week: Vec<Bar>,
    pub most_active_week: Vec<Bar>,
    pub newest_users: Vec<NewUserView>,
}

/// URL of the front page's XP-per-minute chart (the template spells it too).
pub const FRONT_CHART_URL: &str = "/charts/xp-per-minute.svg";

impl FrontView {
    pub fn new(site: SiteView, front: &FrontPageModel) -> Self {
        Self {
            site,
            total_xp: front.total_xp,
            users: front.users,
            top_languages_week: bars(&front.top_languages_week),
            most_active_week: bars(&front.most_active_week),
            newest_users: front
                .newest_users
                .iter()
                .map(|u| NewUserView {
                    username: u.username.clone(),
                    since: u.since.format("%Y-%m-%d").to_string(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LevelView {
    pub name: String,
    pub xp: u64,
    pub new_xp: u64,
    pub level: u32,
    /// Percent into the level, rounded down.
    pub progress: u32,
    /// Width of the part earned before the last 12 hours.
    pub old_width: String,
    /// Width of the part earned in the last 12 hours.
    pub new_width: String,
    pub xp_to_next: u64,
}

impl LevelView {
    fn new(name: &str, xp: u64, new_xp: u64, lvl: u32, progress: f64) -> Self {
        let new = level::new_progress_percent(xp, new_xp).min(progress);
        Self {
            name: name.to_owned(),
            xp,
            new_xp,
            level: lvl,
            progress: progress.floor().clamp(0.0, 100.0) as u32,
            old_width: width(progress - new),
            new_width: width(new),
            xp_to_next: level::xp_to_next_level(xp),
        }
    }

    fn language(l: &LanguageXp) -> Self {
        Self::new(&l.name, l.xp, l.new_xp, l.level, l.progress)
    }
}

#[derive(Debug, Serialize)]
pub struct Timestamp {
    pub text: String,
    pub iso: String,
}

#[derive(Debug, Serialize)]
pub struct ProfileView {
    pub site: SiteView,
    pub username: String,
    pub has_xp: bool,
    pub user_since: String,
    pub last_programmed: Option<Timestamp>,
    pub total: LevelView,
    pub top_languages: Vec<LevelView>,
    pub other_languages: Vec<LevelView>,
    pub machines: Vec<MachineXp>,
    /// Inline SVG from `year::inline_svg` (no user text in it).
    pub year_grid: String,
    /// Badge, year grid and shields.io snippets for READMEs.
    pub embed: EmbedView,
    /// `codestats machines add USER MACHINE`, the username shell-quoted.
    pub setup_command: String,
    pub current_streak: u32,
    pub longest_streak: u32,
    pub xp_per_day_average: u64,
    pub days_with_xp: usize,
    /// Time coded, when the user sent heartbeats.
    pub coded: Option<CodedView>,
}

/// A user's time coded, as the profile shows it.
#[derive(Debug, Serialize)]
pub struct CodedView {
    pub total_seconds: u64,
    pub total: String,
    pub languages: Vec<CodedBar>,
    pub editors: Vec<CodedBar>,
}

#[derive(Debug, Serialize)]
pub struct CodedBar {
    pub name: String,
    pub text: String,
    pub width: String,
}

impl CodedView {
    fn new(c: &CodingTime) -> Option<Self> {
        let bars = |items: &[NamedSeconds]| -> Vec<CodedBar> {
            let max = items.first().map(|i| i.seconds).unwrap_or(0).max(1);
            items
                .iter()
                .take(TOP_LANGUAGES)
                .map(|i| CodedBar {
                    name: i.name.clone(),
                    text: duration_text(i.seconds),
                    width: width(i.seconds as f64 / max as f64 * 100.0),
                })
                .collect()
        };
        (c.total_seconds > 0).then(|| Self {
            total_seconds: c.total_seconds,
            total: duration_text(c.total_seconds),
            languages: bars(&c.languages),
            editors: bars(&c.editors),
        })
    }
}

/// A duration as people read it: `3 h 20 min`, `45 min`, `under a minute`.
pub fn duration_text(seconds: u64) -> String {
    let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
    match (hours, minutes) {
        (0, 0) => "under a minute".to_owned(),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// `name` as one shell word: unchanged when plain, else single-quoted.
/// A name with a character that cannot be shown (a control, a
/// noncharacter, a bidi control) is written in bash's `$'…'` with
/// `\xHH`/`\uHHHH` escapes instead, so the command on the page is visible
/// as it is and copies exactly.
pub fn shell_quote(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | ','));
    let hidden = |c: char| text::is_forbidden(c) || text::is_bidi_control(c);
    if plain {
        name.to_owned()
    } else if name.chars().any(hidden) {
        let mut out = String::from("$'");
        for c in name.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                c if hidden(c) || c.is_control() => match u32::from(c) {
                    n @ 0..0x80 => out.push_str(&format!("\\x{n:02x}")),
                    n @ 0x80..0x1_0000 => out.push_str(&format!("\\u{n:04x}")),
                    n => out.push_str(&format!("\\U{n:08x}")),
                },
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

/// `codestats machines add USER MACHINE` for `username`; a name that starts
/// with `-` follows `--`, so it is not read as an option.
pub fn setup_command(username: &str) -> String {
    let dashes = if username.starts_with('-') { "-- " } else { "" };
    format!(
        "codestats machines add {dashes}{} MACHINE",
        shell_quote(username)
    )
}

/// File names of a profile's charts, inside its folder (the templates
/// spell them too).
pub const HOURS_SVG: &str = "hours.svg";
pub const WEEKDAYS_SVG: &str = "weekdays.svg";
pub const DAYS14_SVG: &str = "last-14-days.svg";
/// File name of a language's chart, inside its folder.
pub const LANGUAGE_SVG: &str = "xp-per-day.svg";

impl ProfileView {
    pub fn new(site: SiteView, p: &ProfileModel, year_grid: String, embed: EmbedView) -> Self {
        let mut languages: Vec<LevelView> = p.languages.iter().map(LevelView::language).collect();
        let other_languages = languages.split_off(languages.len().min(TOP_LANGUAGES));
        Self {
            site,
            username: p.username.clone(),
            has_xp: p.total_xp > 0,
            user_since: p.user_since.format("%Y-%m-%d").to_string(),
            last_programmed: p.last_programmed.map(|t| {
                let (text, iso) = utc(t);
                Timestamp { text, iso }
            }),
            total: LevelView::new("Total", p.total_xp, p.new_xp, p.level, p.progress),
            top_languages: languages,
            other_languages,
            machines: p.machines.clone(),
            year_grid,
            embed,
            setup_command: setup_command(&p.username),
            current_streak: p.current_streak,
            longest_streak: p.longest_streak,
            xp_per_day_average: p.xp_per_day_average.max(0.0).round() as u64,
            days_with_xp: p.daily.iter().filter(|d| d.xp > 0).count(),
            coded: CodedView::new(&p.coding),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LanguageView {
    pub site: SiteView,
    pub name: String,
    pub total_xp: u64,
    pub users: u64,
    /// Public time coded in it, when there is any.
    pub coded: Option<String>,
    pub top_users: Vec<Bar>,
    /// The periods this language has leaderboards for.
    pub leaderboards: Vec<PeriodLink>,
}

impl LanguageView {
    pub fn new(site: SiteView, l: &LanguageModel, leaderboards: &[Period]) -> Self {
        Self {
            site,
            leaderboards: PeriodLink::all(leaderboards, None),
            name: l.name.clone(),
            total_xp: l.total_xp,
            users: l.users,
            top_users: bars(&l.top_users),
            coded: (l.coding_seconds > 0).then(|| duration_text(l.coding_seconds)),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LanguageRow {
    pub name: String,
    pub total_xp: u64,
    pub users: u64,
    pub width: String,
}

#[derive(Debug, Serialize)]
pub struct LanguagesView {
    pub site: SiteView,
    pub languages: Vec<LanguageRow>,
}

impl LanguagesView {
    pub fn new(site: SiteView, languages: &[LanguageModel]) -> Self {
        let mut sorted: Vec<&LanguageModel> = languages.iter().collect();
        sorted.sort_by(|a, b| {
            b.total_xp
                .cmp(&a.total_xp)
                .then_with(|| a.name.cmp(&b.name))
        });
        let max = sorted.first().map(|l| l.total_xp).unwrap_or(0).max(1);
        Self {
            site,
            languages: sorted
                .into_iter()
                .map(|l| LanguageRow {
                    name: l.name.clone(),
                    total_xp: l.total_xp,
                    users: l.users,
                    width: width(l.total_xp as f64 / max as f64 * 100.0),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct NotFoundView {
    pub site: SiteView,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_like_an_option_is_not_read_as_one() {
        assert_eq!(
            setup_command("alice"),
            "codestats machines add alice MACHINE"
        );
        assert_eq!(
            setup_command("--help"),
            "codestats machines add -- --help MACHINE"
        );
        assert_eq!(setup_command("-v"), "codestats machines add -- -v MACHINE");
    }

    #[test]
    fn shell_words() {
        for (name, word) in [
            ("alice", "alice"),
            ("bob.builder", "bob.builder"),
            ("Ñandú", "Ñandú"),
            ("", "''"),
            ("a b", "'a b'"),
            ("it's", "'it'\\''s'"),
            ("$(x)", "'$(x)'"),
            ("\u{202e}evil", "$'\\u202eevil'"),
            ("\u{1b}[1m'\\", "$'\\x1b[1m\\'\\\\'"),
            ("a\tb\u{85}", "$'a\\x09b\\u0085'"),
            ("\u{1fffe}", "$'\\U0001fffe'"),
        ] {
            assert_eq!(shell_quote(name), word, "{name:?}");
        }
    }
}
