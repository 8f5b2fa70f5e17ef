//! The GitHub-style year grid, drawn by hand: one square per day of the
//! 53 weeks ending today, one column per week (Monday on top).
//!
//! [`layout`] computes the grid once; it is drawn twice from it:
//! [`inline_svg`], a fragment of the profile page styled by the site's
//! stylesheet, and [`standalone_svg`], `users/NAME/year.svg`, a file with
//! its own style for READMEs. Both give every day a `<title>` with its XP.
//! Output is deterministic for a given input.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Datelike, Duration, NaiveDate};

use crate::charts::xml_escape;
use crate::model::DailyXp;
use crate::render::thousands;

/// Size of one day's square, and the distance from one to the next.
const CELL: i64 = 11;
const STEP: i64 = 13;
/// Room for the weekday labels on the left and the months on top.
const GRID_LEFT: i64 = 30;
const GRID_TOP: i64 = 16;
/// Weeks in the year grid.
pub const WEEKS: i64 = 53;
/// Width and height of the grid itself.
const GRID_WIDTH: i64 = GRID_LEFT + WEEKS * STEP;
const GRID_HEIGHT: i64 = GRID_TOP + 7 * STEP;

/// One day of the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub xp: u64,
    /// 0 without XP, else 1–4: the quartile of the days with XP it is in.
    pub shade: u8,
    /// Row, 0 = Monday.
    pub row: i64,
}

/// One column of the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Week {
    /// The month labelled above the column (`Jan`), if one starts here.
    pub month: Option<String>,
    /// Monday first; the last week stops at today.
    pub days: Vec<Day>,
}

/// The grid of the 53 weeks ending `today`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearGrid {
    /// The Monday of the first column.
    pub start: NaiveDate,
    pub today: NaiveDate,
    /// XP of the days shown, and how many of them have any.
    pub total: u64,
    pub days_with_xp: usize,
    pub weeks: Vec<Week>,
}

/// The grid for `daily` (any order; days outside the 53 weeks ignored).
pub fn layout(today: NaiveDate, daily: &[DailyXp]) -> YearGrid {
    let weekday = i64::from(today.weekday().num_days_from_monday());
    let start = today - Duration::days(weekday + (WEEKS - 1) * 7);
    let xp: BTreeMap<NaiveDate, u64> = daily
        .iter()
        .filter(|d| d.date >= start && d.date <= today)
        .map(|d| (d.date, d.xp))
        .collect();
    let mut nonzero: Vec<u64> = xp.values().copied().filter(|v| *v > 0).collect();
    nonzero.sort_unstable();
    let quartile = |q: usize| {
        nonzero
            .get((nonzero.len() * q / 4).min(nonzero.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let (q1, q2, q3) = (quartile(1), quartile(2), quartile(3));
    let shade = |v: u64| match v {
        0 => 0,
        v if v < q1 => 1,
        v if v < q2 => 2,
        v if v < q3 => 3,
        _ => 4,
    };
    let mut weeks = Vec::with_capacity(WEEKS as usize);
    let mut last_month = None;
    for week in 0..WEEKS {
        let monday = start + Duration::days(week * 7);
        let mut label = None;
        if last_month != Some(monday.month()) {
            // the first week of a month; the first column only if the next
            // label is far enough away not to overlap
            let first_week = monday.day() <= 7 || (week == 0 && monday.day() <= 14);
            if first_week && week < WEEKS - 2 {
                label = Some(monday.format("%b").to_string());
            }
            last_month = Some(monday.month());
        }
        let days = (0..7)
            .map(|row| (row, monday + Duration::days(row)))
            .take_while(|(_, date)| *date <= today)
            .map(|(row, date)| {
                let v = xp.get(&date).copied().unwrap_or(0);
                Day {
                    date,
                    xp: v,
                    shade: shade(v),
                    row,
                }
            })
            .collect();
        weeks.push(Week { month: label, days });
    }
    YearGrid {
        start,
        today,
        total: xp.values().sum(),
        days_with_xp: nonzero.len(),
        weeks,
    }
}

impl YearGrid {
    /// `XP per day, START to TODAY: X XP on N days`.
    fn summary(&self) -> String {
        format!(
            "XP per day, {} to {}: {}",
            self.start.format("%Y-%m-%d"),
            self.today.format("%Y-%m-%d"),
            self.totals()
        )
    }

    /// `X XP on N days`.
    fn totals(&self) -> String {
        format!("{} XP on {} days", thousands(self.total), self.days_with_xp)
    }

    /// Weekday and month labels and the squares, in grid coordinates:
    /// classes `c0`–`c4` by shade, `today` on today.
    fn body(&self, out: &mut String) {
        for (row, name) in [(0, "Mon"), (2, "Wed"), (4, "Fri")] {
            let _ = writeln!(
                out,
                "<text x=\"0\" y=\"{}\">{name}</text>",
                GRID_TOP + row * STEP + CELL - 1
            );
        }
        for (week, w) in (0..).zip(&self.weeks) {
            let x = GRID_LEFT + week * STEP;
            if let Some(month) = &w.month {
                let _ = writeln!(out, "<text x=\"{x}\" y=\"10\">{month}</text>");
            }
            for d in &w.days {
                let today = if d.date == self.today { " today" } else { "" };
                let _ = writeln!(
                    out,
                    "<rect x=\"{x}\" y=\"{}\" width=\"{CELL}\" height=\"{CELL}\" rx=\"2\" class=\"c{}{today}\"><title>{}: {} XP</title></rect>",
                    GRID_TOP + d.row * STEP,
                    d.shade,
                    d.date.format("%Y-%m-%d"),
                    thousands(d.xp),
                );
            }
        }
    }
}

/// The grid as an inline `<svg class="year">` for the profile page, styled
/// by the site's stylesheet. Contains no user-provided text.
pub fn inline_svg(today: NaiveDate, daily: &[DailyXp]) -> String {
    let grid = layout(today, daily);
    let mut out = format!(
        "<svg class=\"year\" role=\"img\" viewBox=\"0 0 {GRID_WIDTH} {GRID_HEIGHT}\" width=\"{GRID_WIDTH}\" height=\"{GRID_HEIGHT}\" xmlns=\"http://www.w3.org/2000/svg\">\n<title>{}</title>\n",
        grid.summary()
    );
    grid.body(&mut out);
    out.push_str("</svg>\n");
    out
}

/// Room around the grid in the standalone file, above it for the title and
/// below it for the legend.
const PAD: i64 = 12;
const TITLE_HEIGHT: i64 = 22;
const LEGEND_HEIGHT: i64 = 20;

/// The style of `year.svg`: an opaque card in the site's light colours, its
/// dark colours when the reader prefers them (the values of
/// `site/style.css`).
const STANDALONE_STYLE: &str = "<style>\
text{fill:#5f6670;font:9px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
.t{fill:#1d2025;font-size:13px;font-weight:600}\
.bg{fill:#fdfdfc;stroke:#dde0e4}\
.c0{fill:#e6e8eb}.c1{fill:#b7d3ee}.c2{fill:#7fb0e0}.c3{fill:#3f86c9}.c4{fill:#1c5a96}\
.today{stroke:#e07a1f;stroke-width:1.5}\
@media (prefers-color-scheme: dark){\
text{fill:#9aa1ab}.t{fill:#e4e6e9}.bg{fill:#15171a;stroke:#2c3036}\
.c0{fill:#24282d}.c1{fill:#1d3f5f}.c2{fill:#275f8f}.c3{fill:#3a84c4}.c4{fill:#77b5ee}\
.today{stroke:#f0a050}}\
</style>";

/// `users/NAME/year.svg`: the grid as a standalone SVG for READMEs, on an
/// opaque rounded card, titled "NAME — XP in the last year", with a
/// less/more legend. The name is the only user text, escaped by
/// [`xml_escape`].
pub fn standalone_svg(username: &str, today: NaiveDate, daily: &[DailyXp]) -> String {
    let grid = layout(today, daily);
    let width = GRID_WIDTH + 2 * PAD;
    let height = PAD + TITLE_HEIGHT + GRID_HEIGHT + LEGEND_HEIGHT + PAD;
    let heading = xml_escape(&format!("{username} — XP in the last year"));
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\n<title>{heading}: {}, {} to {}</title>\n{STANDALONE_STYLE}\n",
        grid.totals(),
        grid.start.format("%Y-%m-%d"),
        grid.today.format("%Y-%m-%d"),
    );
    let _ = writeln!(
        out,
        "<rect class=\"bg\" x=\"0.5\" y=\"0.5\" width=\"{}\" height=\"{}\" rx=\"6\"/>",
        width - 1,
        height - 1
    );
    let _ = writeln!(
        out,
        "<text class=\"t\" x=\"{PAD}\" y=\"{}\">{heading}</text>",
        PAD + 14
    );
    let _ = writeln!(
        out,
        "<g transform=\"translate({PAD} {})\">",
        PAD + TITLE_HEIGHT
    );
    grid.body(&mut out);
    out.push_str("</g>\n");
    // the legend, under the grid: the total on the left, less/more on the right
    let y = PAD + TITLE_HEIGHT + GRID_HEIGHT + 6;
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\">{}</text>",
        PAD + GRID_LEFT,
        y + CELL - 1,
        grid.totals()
    );
    let first = width - PAD - 26 - 5 * STEP;
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">Less</text>",
        first - 4,
        y + CELL - 1
    );
    for shade in 0..5 {
        let _ = writeln!(
            out,
            "<rect x=\"{}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" rx=\"2\" class=\"c{shade}\"/>",
            first + shade * STEP
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\">More</text>",
        first + 5 * STEP + 2,
        y + CELL - 1
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_grid_ends_today_and_starts_on_a_monday() {
        let today = date(2024, 1, 1); // a Monday
        let grid = layout(today, &[]);
        assert_eq!(grid.weeks.len(), WEEKS as usize);
        assert_eq!(grid.start.weekday(), chrono::Weekday::Mon);
        let days: usize = grid.weeks.iter().map(|w| w.days.len()).sum();
        assert_eq!(days, 52 * 7 + 1);
        assert_eq!(inline_svg(today, &[]).matches("<rect").count(), days);
    }

    #[test]
    fn shades_are_quartiles_of_the_days_with_xp() {
        let today = date(2024, 6, 1);
        let daily: Vec<DailyXp> = (1..=8)
            .map(|i| DailyXp {
                date: today - Duration::days(i),
                xp: i as u64 * 100,
            })
            .chain([DailyXp {
                date: today - Duration::days(400),
                xp: 1_000_000,
            }])
            .collect();
        let grid = layout(today, &daily);
        assert_eq!(grid.total, 3600);
        assert_eq!(grid.days_with_xp, 8);
        let shades: BTreeMap<u64, u8> = grid
            .weeks
            .iter()
            .flat_map(|w| &w.days)
            .map(|d| (d.xp, d.shade))
            .collect();
        assert_eq!(shades[&0], 0);
        assert_eq!(shades[&100], 1);
        assert_eq!(shades[&800], 4);
    }

    #[test]
    fn the_standalone_file_escapes_the_name() {
        let svg = standalone_svg("<b>\u{202e}&", date(2024, 6, 1), &[]);
        assert!(svg.contains(">&lt;b&gt;&amp; — XP in the last year</text>"));
        assert!(!svg.contains('\u{202e}'));
        assert!(svg.contains("prefers-color-scheme: dark"));
    }
}
