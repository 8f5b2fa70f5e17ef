//! What READMEs embed: every profile's badge, year grid and shields.io
//! document, their numbers against the profile, and the snippets on the
//! profile page.

mod common;

use builder::model::{DailyXp, LanguageXp};
use common::*;

/// The texts of a badge: its label and its message (each drawn twice,
/// shadow first).
fn badge_texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn every_profile_has_its_badge_year_grid_and_shields_document() {
    let site = fixture();
    let (_tmp, out, _) = build(&site);
    for p in &site.profiles {
        let dir = format!("users/{}", builder::paths::segment(&p.username));
        let message = format!("level {} · {} XP", p.level, builder::thousands(p.total_xp));

        let rel = format!("{dir}/badge.svg");
        let svg = read(&out, &rel);
        let doc = parse_svg(&rel, &svg);
        assert_eq!(
            badge_texts(&doc),
            ["codestats", "codestats", message.as_str(), message.as_str()],
            "{rel}"
        );
        let root = doc.root_element();
        assert_eq!(
            root.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        assert_eq!(root.attribute("role"), Some("img"));
        let spoken = format!("codestats: {message}");
        assert_eq!(root.attribute("aria-label"), Some(spoken.as_str()));

        let rel = format!("{dir}/shields.json");
        let v: serde_json::Value = serde_json::from_str(&read(&out, &rel)).unwrap();
        let color = builder::badge::level_color(p.level);
        assert_eq!(
            v,
            serde_json::json!({"schemaVersion": 1, "label": "codestats",
                "message": message, "color": color, "cacheSeconds": 300}),
            "{rel}"
        );
        // the badge is drawn in the same colour
        assert!(svg.contains(&format!("fill=\"{color}\"")), "{rel}");

        let rel = format!("{dir}/year.svg");
        let svg = read(&out, &rel);
        let doc = parse_svg(&rel, &svg);
        let heading = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("t"))
            .and_then(|n| n.text());
        let expected = format!("{} — XP in the last year", p.username);
        assert_eq!(heading, Some(expected.as_str()), "{rel}");
    }
}

/// Every day of the grid, from its first Monday to today, with the
/// profile's XP (0 on days without).
fn expected_cells(today: chrono::NaiveDate, daily: &[DailyXp]) -> Vec<(chrono::NaiveDate, u64)> {
    use chrono::Datelike as _;
    let weekday = i64::from(today.weekday().num_days_from_monday());
    let start = today - chrono::Duration::days(weekday + 52 * 7);
    start
        .iter_days()
        .take_while(|d| *d <= today)
        .map(|d| {
            let xp = daily.iter().find(|x| x.date == d).map_or(0, |x| x.xp);
            (d, xp)
        })
        .collect()
}

#[test]
fn year_grid_cells_carry_the_profiles_daily_xp() {
    let site = fixture();
    let (_tmp, out, _) = build(&site);
    let mut days_with_xp = 0;
    for p in &site.profiles {
        let dir = format!("users/{}", builder::paths::segment(&p.username));
        let rel = format!("{dir}/year.svg");
        let svg = read(&out, &rel);
        let cells = grid_cells(&parse_svg(&rel, &svg));
        let expected = expected_cells(p.today, &p.daily);
        assert_eq!(cells.into_iter().collect::<Vec<_>>(), expected, "{rel}");
        days_with_xp += expected.iter().filter(|(_, xp)| *xp > 0).count();
        // the page's inline grid (with XP only) is drawn from the same days
        if p.total_xp == 0 {
            continue;
        }
        let page = read(&out, &format!("{dir}/index.html"));
        let start = page.find("<svg class=\"year\"").unwrap();
        let end = start + page[start..].find("</svg>").unwrap() + "</svg>".len();
        let inline = grid_cells(&parse_svg(&format!("{dir}/index.html"), &page[start..end]));
        assert_eq!(inline.into_iter().collect::<Vec<_>>(), expected, "{dir}");
    }
    assert!(days_with_xp > 300, "{days_with_xp}");
}

#[test]
fn the_profile_page_offers_snippets_with_absolute_urls() {
    let mut site = fixture();
    // bob's top language needs encoding in a query
    site.profiles[1]
        .languages
        .insert(0, LanguageXp::new("C/C++", 90_000, 0));
    let (_tmp, out, _) = build(&site);
    let alice = unescape_html(&read(&out, "users/alice/index.html"));
    let profile = "https://codestats.example.org/users/alice/";
    for snippet in [
        format!("[![codestats level]({profile}badge.svg)]({profile})"),
        format!(
            "<a href=\"{profile}\"><img src=\"{profile}badge.svg\" alt=\"codestats level\"></a>"
        ),
        format!("[![XP in the last year]({profile}year.svg)]({profile})"),
        format!(
            "[![codestats level](https://img.shields.io/endpoint?url=https%3A%2F%2Fcodestats.example.org%2Fusers%2Falice%2Fshields.json)]({profile})"
        ),
        format!("[![codestats level in Rust]({profile}badge.svg?language=Rust)]({profile})"),
    ] {
        assert!(
            alice.contains(&format!("<pre><code>{snippet}</code></pre>")),
            "{snippet}"
        );
    }
    let bob = unescape_html(&read(&out, "users/bob.builder/index.html"));
    assert!(
        bob.contains("/users/bob.builder/badge.svg?language=C%2FC%2B%2B)"),
        "{bob}"
    );
    // a unicode name: encoded once in the URL, and once more in the query
    let nandu = unescape_html(&read(&out, "users/Ñandú/index.html"));
    assert!(nandu.contains("(https://codestats.example.org/users/%C3%91and%C3%BA/badge.svg)"));
    assert!(nandu.contains(
        "endpoint?url=https%3A%2F%2Fcodestats.example.org%2Fusers%2F%25C3%2591and%25C3%25BA%2Fshields.json)"
    ));
    // the user without XP gets them too, without a language example
    let newbie = unescape_html(&read(&out, "users/newbie/index.html"));
    assert!(newbie.contains("https://codestats.example.org/users/newbie/year.svg"));
    assert!(!newbie.contains("?language=N"));
}
