//! SVG charts: plotters into a `String` (the year grid, drawn by hand, is
//! [`crate::year`]).
//!
//! Every chart starts with a `<title>` (and `role="img"`) for screen readers.
//! User-provided text (language names in legends, names in titles) passes
//! [`text::for_label`] (no characters XML forbids, no bidi controls) and is
//! escaped: titles by [`xml_escape`], legend labels by plotters, which
//! escapes text itself but filters nothing (so labels are cleaned before
//! they are handed to it). Output is deterministic for a given input.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use chrono::{DateTime, Duration, NaiveDate};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::model::{DailyXp, DayLanguages, MinuteXp};
use crate::{Error, text};

type ChartResult = Result<(), Box<dyn StdError>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

const FONT: &str = "sans-serif";
const TEXT: RGBColor = RGBColor(0x55, 0x5b, 0x66);
const GRID: RGBColor = RGBColor(0x99, 0x99, 0x99);
const BAR: RGBColor = RGBColor(0x2f, 0x80, 0xc8);
const OTHER: RGBColor = RGBColor(0x9a, 0xa0, 0xa6);

/// Colours of the stacked languages, in order of XP.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0x2f, 0x80, 0xc8),
    RGBColor(0xe0, 0x7a, 0x1f),
    RGBColor(0x3a, 0xa6, 0x5b),
    RGBColor(0xc8, 0x3e, 0x4d),
    RGBColor(0x8e, 0x5c, 0xc4),
    RGBColor(0x1f, 0xa3, 0xa3),
];

/// Style inside every SVG: text follows the reader's colour scheme.
const SVG_STYLE: &str =
    "<style>text{fill:#555b66}@media (prefers-color-scheme: dark){text{fill:#c9ccd1}}</style>";

/// Escapes text for XML content and attribute values, after
/// [`text::for_label`]: characters XML forbids become U+FFFD and bidi
/// controls are dropped.
pub fn xml_escape(input: &str) -> String {
    let clean = text::for_label(input);
    let mut out = String::with_capacity(clean.len());
    for c in clean.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders with plotters into a string and adds title and style.
fn render(
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&Area<'_>) -> ChartResult,
) -> Result<String, Error> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        draw(&root).map_err(|e| Error::Chart(e.to_string()))?;
        root.present().map_err(|e| Error::Chart(e.to_string()))?;
    }
    Ok(with_title(&buf, title))
}

/// Adds `role="img"`, `<title>` and the style block to plotters' `<svg>`.
fn with_title(svg: &str, title: &str) -> String {
    let Some(start) = svg.find("<svg") else {
        return svg.to_owned();
    };
    let Some(end) = svg[start..].find('>').map(|i| start + i) else {
        return svg.to_owned();
    };
    format!(
        "{} role=\"img\">\n<title>{}</title>\n{SVG_STYLE}{}",
        &svg[..end],
        xml_escape(title),
        &svg[end + 1..]
    )
}

/// `12345` → `12k`, for axis labels.
pub fn short_number(v: u64) -> String {
    match v {
        0..1_000 => v.to_string(),
        1_000..10_000 if !v.is_multiple_of(1_000) => format!("{:.1}k", v as f64 / 1e3),
        1_000..1_000_000 => format!("{}k", v / 1_000),
        _ if !v.is_multiple_of(1_000_000) && v < 10_000_000 => format!("{:.1}M", v as f64 / 1e6),
        _ => format!("{}M", v / 1_000_000),
    }
}

/// The bar of slot `i` of `n` on a segmented axis, from `base` to `top`.
/// (Drawn by hand rather than with plotters' `Histogram`, which aggregates
/// in a `HashMap` and so emits its rectangles in a random order.)
fn bar(
    i: u32,
    n: u32,
    base: u64,
    top: u64,
    color: RGBColor,
    margin: u32,
) -> Rectangle<(SegmentValue<u32>, u64)> {
    let next = if i + 1 >= n {
        SegmentValue::Last
    } else {
        SegmentValue::Exact(i + 1)
    };
    let mut rect = Rectangle::new(
        [(SegmentValue::Exact(i), top), (next, base)],
        color.filled(),
    );
    rect.set_margin(0, 0, margin, margin);
    rect
}

/// A y range from 0 with room above the largest value.
fn y_max(max: u64) -> u64 {
    (max + max / 10).max(10)
}

fn label_style() -> TextStyle<'static> {
    (FONT, 11).into_font().color(&TEXT)
}

/// Bars for a fixed set of labelled slots (hours, weekdays).
fn bars(
    title: &str,
    size: (u32, u32),
    values: &[u64],
    label: &dyn Fn(usize) -> String,
    every: usize,
) -> Result<String, Error> {
    let n = u32::try_from(values.len()).unwrap_or(u32::MAX);
    let max = values.iter().copied().max().unwrap_or(0);
    render(size, title, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(20)
            .y_label_area_size(40)
            .build_cartesian_2d(
                (0u32..n.saturating_sub(1)).into_segmented(),
                0u64..y_max(max),
            )?;
        let x_fmt = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if (*i as usize).is_multiple_of(every) => label(*i as usize),
            _ => String::new(),
        };
        let y_fmt = |v: &u64| short_number(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID.mix(0.3))
            .axis_style(GRID)
            .label_style(label_style())
            .x_labels(values.len())
            .y_labels(4)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        chart.draw_series(
            values
                .iter()
                .enumerate()
                .filter(|(_, xp)| **xp > 0)
                .map(|(i, xp)| bar(i as u32, n, 0, *xp, BAR, 2)),
        )?;
        Ok(())
    })
}

/// XP by hour of day.
pub fn hours(username: &str, hours: &[u64; 24]) -> Result<String, Error> {
    bars(
        &format!("XP by hour of day for {username}"),
        (480, 200),
        hours,
        &|h| format!("{h:02}"),
        3,
    )
}

/// Weekday labels, Monday first.
pub const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// XP by day of week.
pub fn weekdays(username: &str, weekdays: &[u64; 7]) -> Result<String, Error> {
    bars(
        &format!("XP by day of week for {username}"),
        (480, 200),
        weekdays,
        &|d| WEEKDAYS[d % 7].to_owned(),
        1,
    )
}

/// Most languages named in the 14-day chart; the rest are "Other".
const STACKED_LANGUAGES: usize = 6;

/// The languages of the last 14 days, by their XP in those days.
pub fn top_languages_14_days(days: &[DayLanguages]) -> Vec<String> {
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for day in days {
        for l in &day.languages {
            *totals.entry(l.name.as_str()).or_default() += l.xp;
        }
    }
    let mut v: Vec<(&str, u64)> = totals.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    v.into_iter().map(|(n, _)| n.to_owned()).collect()
}

/// A name as a plotters label: [`text::for_label`], shortened to at most
/// `max` characters.
fn label(name: &str, max: usize) -> String {
    let name = text::for_label(name);
    if name.chars().count() <= max {
        name.into_owned()
    } else {
        let mut s: String = name.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Stacked bars: XP per language over the last 14 days, with a legend.
pub fn last_14_days(username: &str, days: &[DayLanguages]) -> Result<String, Error> {
    let order = top_languages_14_days(days);
    let named: Vec<&str> = order
        .iter()
        .take(STACKED_LANGUAGES)
        .map(String::as_str)
        .collect();
    let has_other = order.len() > STACKED_LANGUAGES;
    // series[k][day] for each named language, then "Other"
    let mut series: Vec<Vec<u64>> = vec![vec![0; days.len()]; named.len() + usize::from(has_other)];
    for (d, day) in days.iter().enumerate() {
        for l in &day.languages {
            let k = named
                .iter()
                .position(|n| *n == l.name)
                .unwrap_or(named.len());
            if let Some(s) = series.get_mut(k) {
                s[d] += l.xp;
            }
        }
    }
    let totals: Vec<u64> = (0..days.len())
        .map(|d| series.iter().map(|s| s[d]).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.date).collect();
    let n = u32::try_from(days.len()).unwrap_or(u32::MAX);
    render(
        (640, 240),
        &format!("XP per language over the last 14 days for {username}"),
        |root| {
            let (plot, legend) = root.split_horizontally(500);
            let mut chart = ChartBuilder::on(&plot)
                .margin(8)
                .x_label_area_size(20)
                .y_label_area_size(40)
                .build_cartesian_2d(
                    (0u32..n.saturating_sub(1)).into_segmented(),
                    0u64..y_max(max),
                )?;
            let x_fmt = |v: &SegmentValue<u32>| match v {
                SegmentValue::CenterOf(i) if i % 2 == 1 || *i + 1 == n => dates
                    .get(*i as usize)
                    .map(|d| d.format("%d").to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let y_fmt = |v: &u64| short_number(*v);
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(TRANSPARENT)
                .bold_line_style(GRID.mix(0.3))
                .axis_style(GRID)
                .label_style(label_style())
                .x_labels(days.len())
                .y_labels(4)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .draw()?;
            let mut base = vec![0u64; days.len()];
            for (k, values) in series.iter().enumerate() {
                let color = PALETTE.get(k).copied().unwrap_or(OTHER);
                let below = base.clone();
                let tops: Vec<u64> = values.iter().zip(&below).map(|(v, b)| v + b).collect();
                chart.draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| **v > 0)
                        .map(|(i, _)| bar(i as u32, n, below[i], tops[i], color, 3)),
                )?;
                base = tops;
            }
            let legend = legend.margin(12, 0, 4, 4);
            let labels = named
                .iter()
                .map(|n| label(n, 16))
                .chain(has_other.then(|| "Other".to_owned()));
            for (k, name) in labels.enumerate() {
                let color = PALETTE.get(k).copied().unwrap_or(OTHER);
                let y = 4 + 20 * k as i32;
                legend.draw(&Rectangle::new([(0, y), (12, y + 12)], color.filled()))?;
                legend.draw(&Text::new(name, (18, y), label_style()))?;
            }
            Ok(())
        },
    )
}

/// An area chart of XP per day over the whole history, for language pages.
pub fn xp_per_day(title: &str, days: &[DailyXp]) -> Result<String, Error> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let points: Vec<(i64, u64)> = days
        .iter()
        .map(|d| ((d.date - epoch).num_days(), d.xp))
        .collect();
    let first = points.first().map(|p| p.0).unwrap_or(0);
    let last = points.last().map(|p| p.0).unwrap_or(0).max(first + 1);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0);
    // fill the days without XP with 0 so the area drops to the axis
    let mut filled = Vec::new();
    let mut it = points.iter().peekable();
    for day in first..=last {
        match it.peek() {
            Some((d, xp)) if *d == day => {
                filled.push((day, *xp));
                it.next();
            }
            _ => filled.push((day, 0)),
        }
    }
    render((720, 260), title, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(20)
            .y_label_area_size(44)
            .build_cartesian_2d(first..last, 0u64..y_max(max))?;
        let x_fmt = |v: &i64| (epoch + Duration::days(*v)).format("%Y-%m-%d").to_string();
        let y_fmt = |v: &u64| short_number(*v);
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID.mix(0.3))
            .axis_style(GRID)
            .label_style(label_style())
            .x_labels(5)
            .y_labels(4)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        chart.draw_series(AreaSeries::new(filled, 0, BAR.mix(0.35)).border_style(BAR))?;
        Ok(())
    })
}

/// Minutes shown on the front page's live graph.
pub const LIVE_MINUTES: i64 = 4 * 60;

/// XP per minute over the 4 hours before `now` (UTC labels).
pub fn xp_per_minute(now: i64, minutes: &[MinuteXp]) -> Result<String, Error> {
    let end = now - now.rem_euclid(60);
    let start = end - (LIVE_MINUTES - 1) * 60;
    let mut values = vec![0u64; LIVE_MINUTES as usize];
    for m in minutes {
        if (start..=end).contains(&m.minute) {
            values[((m.minute - start) / 60) as usize] += m.xp;
        }
    }
    let max = values.iter().copied().max().unwrap_or(0);
    render((720, 220), "XP per minute over the last 4 hours", |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .margin_right(24)
            .x_label_area_size(20)
            .y_label_area_size(44)
            .build_cartesian_2d(0i64..LIVE_MINUTES - 1, 0u64..y_max(max))?;
        let x_fmt = |v: &i64| {
            DateTime::from_timestamp(start + v * 60, 0)
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default()
        };
        let y_fmt = |v: &u64| short_number(*v);
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID.mix(0.3))
            .axis_style(GRID)
            .label_style(label_style())
            .x_labels(9)
            .y_labels(4)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()?;
        chart.draw_series(
            AreaSeries::new(
                values.iter().enumerate().map(|(i, v)| (i as i64, *v)),
                0,
                BAR.mix(0.35),
            )
            .border_style(BAR),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        for (v, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1k"),
            (1500, "1.5k"),
            (12_000, "12k"),
            (999_999, "999k"),
            (1_000_000, "1M"),
            (2_500_000, "2.5M"),
            (12_000_000, "12M"),
        ] {
            assert_eq!(short_number(v), s, "{v}");
        }
    }

    #[test]
    fn titles_are_escaped() {
        let svg = hours("<b>&\"x'", &[1; 24]).unwrap();
        assert!(svg.contains("<title>XP by hour of day for &lt;b&gt;&amp;&quot;x&#39;</title>"));
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("role=\"img\""));
    }

    #[test]
    fn labels_hold_only_what_xml_allows() {
        assert_eq!(
            xml_escape("\u{202e}a\u{1b}\u{ffff}<"),
            "a\u{fffd}\u{fffd}&lt;"
        );
        assert_eq!(label("\u{2067}\u{0}abcdef", 5), "\u{fffd}abc…");
        let day = DayLanguages {
            date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            languages: vec![crate::model::NamedXp::new("\u{202e}x\u{fffe}", 5)],
        };
        let svg = last_14_days("\u{1b}", &[day]).unwrap();
        assert!(svg.contains("\nx\u{fffd}\n</text>"), "{svg}");
        assert!(!svg.contains(['\u{1b}', '\u{202e}', '\u{fffe}']), "{svg}");
    }

    #[test]
    fn empty_inputs_render() {
        hours("a", &[0; 24]).unwrap();
        last_14_days("a", &[]).unwrap();
        xp_per_day("t", &[]).unwrap();
        xp_per_minute(0, &[]).unwrap();
    }
}
