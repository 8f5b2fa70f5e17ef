//! Hostile names (usernames, languages, machines) are inert everywhere and
//! no name can make the builder write outside its output directory.

mod common;

use std::fs;

use builder::model::*;
use common::*;

const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "\"><svg onload=alert(1)>",
    "a&b",
    "' onmouseover='alert(1)",
    "../../etc",
    ".",
    "..",
    "a/b",
    "%2e%2e",
    "..\\..\\x",
    "$(touch pwned)",
    // characters XML 1.0 forbids (ESC, NUL, noncharacters) or HTML calls
    // a parse error (C1 controls, noncharacters)
    "\u{1b}[31mred",
    "nul\0byte",
    "a\u{fffe}b",
    "a\u{ffff}",
    "next\u{85}line",
    "non\u{fdd0}char",
    // bidi controls: a right-to-left override, and one after a stray
    // isolate terminator
    "\u{202e}evil",
    "\u{2069}\u{202e}worse",
    // markup that is only dangerous unescaped
    "]]>",
    "<!--",
    "-->",
    "<![CDATA[x",
];

fn hostile_site() -> SiteModel {
    let mut site = fixture();
    let machines: Vec<(&str, u64, u64)> = HOSTILE.iter().map(|n| (*n, 100, 1)).collect();
    let n = HOSTILE.len();
    for (i, name) in HOSTILE.iter().enumerate() {
        // every name is a language of every profile; the profile's own name
        // and the next ones have the most XP, so each name is in the
        // legends of a few charts
        let languages: Vec<(&str, u64, u64)> = HOSTILE
            .iter()
            .enumerate()
            .map(|(j, l)| (*l, 1000 * (n - (j + n - i) % n) as u64, 10))
            .collect();
        site.profiles
            .push(profile(name, &languages, &machines, 30, i as u64));
        site.profiles
            .push(profile(&format!("{name}-new"), &[], &[], 0, 0));
        site.languages
            .push(language(name, 1000, &[(name, 1000), ("alice", 10)]));
        site.front.top_languages_week.push(NamedXp::new(*name, 5));
        site.front.most_active_week.push(NamedXp::new(*name, 5));
        site.front.newest_users.push(NewUser {
            username: (*name).to_owned(),
            since: date("2024-05-31"),
        });
        // on every overall board, and on a board of their own language
        let rank = i as u32 + 1;
        for board in site
            .leaderboards
            .boards
            .iter_mut()
            .filter(|b| b.language.is_none())
        {
            board.entries.push(LeaderEntry {
                rank: 100 + rank,
                username: (*name).to_owned(),
                xp: 1,
            });
        }
        site.leaderboards.boards.push(Leaderboard {
            period: Period::ALL[i % 4],
            language: Some((*name).to_owned()),
            since: Some(date("2024-05-27")),
            entries: vec![LeaderEntry {
                rank: 1,
                username: (*name).to_owned(),
                xp: 1000,
            }],
        });
    }
    site
}

#[test]
fn hostile_names_are_inert_everywhere() {
    let (tmp, out, report) = build(&hostile_site());
    assert_eq!(report.users, 4 + 2 * HOSTILE.len());
    for rel in files(&out) {
        let text = String::from_utf8_lossy(&fs::read(out.join(&rel)).unwrap()).to_lowercase();
        // the only scripts are our own: live updates and the account menu
        assert_eq!(
            text.matches("<script").count(),
            text.matches("<script src=\"/static/live.js?v=").count()
                + text.matches("<script src=\"/static/account.js?v=").count(),
            "{rel} has a <script"
        );
        assert!(!text.contains("<svg onload"), "{rel} has a live onload");
        assert!(
            !text.contains("\"><svg onload"),
            "{rel} breaks out of an attribute"
        );
        if !rel.ends_with(".json") {
            // JSON keeps `'` as is: it is inside a string there, not an attribute
            assert!(
                !text.contains("' onmouseover"),
                "{rel} breaks out of an attribute"
            );
        }
        // every `onload=` left is escaped text: &lt;svg onload= or \u003csvg onload=
        let total = text.matches("onload=").count();
        let escaped =
            text.matches("&lt;svg onload=").count() + text.matches("\\u003csvg onload=").count();
        assert_eq!(total, escaped, "{rel}");
    }
    // the names did reach the output, escaped
    let alice = read(&out, "users/alice/index.html");
    let _ = alice;
    let front = read(&out, "index.html");
    assert!(front.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"));
    assert!(front.contains("a&amp;b"));
    let json = read(
        &out,
        "api/users/~3Cscript~3Ealert~281~29~3C~2Fscript~3E.json",
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["user"], "<script>alert(1)</script>");
    assert_eq!(v["machines"]["a&b"]["xps"], 100);

    // nothing was written beside the output directory but its build lock
    let mut siblings: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".site.lock")
        .collect();
    siblings.sort();
    assert_eq!(siblings, ["site"]);
    // and every file is where its encoded name says
    for rel in files(&out) {
        let path = out.join(&rel).canonicalize().unwrap();
        assert!(path.starts_with(out.canonicalize().unwrap()), "{rel}");
    }
    for name in ["..", "."] {
        let seg = builder::paths::segment(name);
        assert!(exists(&out, &format!("users/{seg}/index.html")), "{name}");
        assert!(
            exists(&out, &format!("languages/{seg}/index.html")),
            "{name}"
        );
    }
}

#[test]
fn hostile_names_are_escaped_in_charts() {
    let (_tmp, out, _) = build(&hostile_site());
    let seg = builder::paths::segment("<script>alert(1)</script>");
    let svg = read(&out, &format!("users/{seg}/last-14-days.svg"));
    // the legend holds language names, escaped by plotters
    assert!(svg.contains("&lt;script&gt;"), "{svg}");
    let svg = read(&out, &format!("languages/{seg}/xp-per-day.svg"));
    assert!(
        svg.contains("<title>Public XP per day in &lt;script&gt;alert(1)&lt;/script&gt;</title>")
    );
    let seg = builder::paths::segment("\"><svg onload=alert(1)>");
    let svg = read(&out, &format!("users/{seg}/hours.svg"));
    assert!(
        svg.contains("&quot;&gt;&lt;svg onload=alert(1)&gt;"),
        "{svg}"
    );
}

#[test]
fn setup_command_is_shell_quoted() {
    let (_tmp, out, _) = build(&hostile_site());
    let seg = builder::paths::segment("$(touch pwned)-new");
    let page = read(&out, &format!("users/{seg}/index.html"));
    assert!(
        page.contains("codestats machines add &#x27;$(touch pwned)-new&#x27; MACHINE"),
        "{page}"
    );
    // what cannot be shown is written as an escape, in bash's $'…'
    for (name, quoted) in [
        ("\u{202e}evil-new", "$&#x27;\\u202eevil-new&#x27;"),
        ("\u{1b}[31mred-new", "$&#x27;\\x1b[31mred-new&#x27;"),
        ("a\u{ffff}-new", "$&#x27;a\\uffff-new&#x27;"),
    ] {
        let seg = builder::paths::segment(name);
        let page = read(&out, &format!("users/{seg}/index.html"));
        assert!(
            page.contains(&format!("codestats machines add {quoted} MACHINE")),
            "{page}"
        );
    }
}

/// Explicit bidi formatting: embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A character an HTML parser reports as an error: NUL, controls other than
/// ASCII whitespace, and noncharacters.
fn html_forbids(c: char) -> bool {
    let controls = c.is_control() && !matches!(c, '\t' | '\n' | '\u{c}' | '\r');
    let nonchar = matches!(c, '\u{fdd0}'..='\u{fdef}') || (c as u32) & 0xfffe == 0xfffe;
    controls || nonchar
}

#[test]
fn every_file_is_valid_whatever_the_names() {
    let (_tmp, out, _) = build(&hostile_site());
    let (mut svgs, mut pages, mut docs) = (0, 0, 0);
    let mut bad = Vec::new();
    for rel in files(&out) {
        let text = read(&out, &rel);
        if rel.ends_with(".svg") {
            if let Err(e) = roxmltree::Document::parse(&text) {
                bad.push(format!("{rel} is not well-formed XML: {e}"));
            }
            if let Some(c) = text.chars().find(|c| is_bidi_control(*c)) {
                bad.push(format!("{rel} has the bidi control {c:?}"));
            }
            svgs += 1;
        } else if rel.ends_with(".html") {
            if let Some(c) = text.chars().find(|c| html_forbids(*c)) {
                bad.push(format!("{rel} has {c:?}"));
            }
            pages += 1;
        } else if rel.ends_with(".json") {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                bad.push(format!("{rel} is not JSON: {e}"));
            }
            docs += 1;
        }
    }
    assert!(
        bad.is_empty(),
        "{} bad files:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(svgs > 3 * HOSTILE.len(), "{svgs} SVG files");
    assert!(pages > 3 * HOSTILE.len(), "{pages} pages");
    assert!(docs > 2 * HOSTILE.len(), "{docs} JSON files");

    // the models' names are kept: the JSON holds them exactly as sent
    let seg = builder::paths::segment("\u{1b}[31mred");
    let v: serde_json::Value =
        serde_json::from_str(&read(&out, &format!("api/users/{seg}.json"))).unwrap();
    assert_eq!(v["user"], "\u{1b}[31mred");
    assert!(v["languages"]["a\u{ffff}"]["xps"].is_u64(), "{v}");
    assert_eq!(v["machines"]["nul\0byte"]["xps"], 100);
    // the charts say where a character was dropped
    let svg = read(&out, &format!("users/{seg}/hours.svg"));
    assert!(svg.contains("for \u{fffd}[31mred</title>"), "{svg}");
}

/// Walks an HTML page's text outside tags and checks that every bidi
/// control in it is inside a `<bdi>` and none is in the `<title>`.
fn check_isolated(rel: &str, page: &str) {
    let mut depth = 0usize;
    let mut in_title = false;
    let mut rest = page;
    while let Some(c) = rest.chars().next() {
        if c == '<' {
            let end = rest.find('>').unwrap_or(rest.len());
            let name: String = rest[1..end]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect::<String>()
                .to_lowercase();
            match name.as_str() {
                "bdi" => depth += 1,
                "/bdi" => depth = depth.checked_sub(1).expect("unbalanced </bdi>"),
                "title" => in_title = true,
                "/title" => in_title = false,
                _ => {}
            }
            rest = &rest[(end + 1).min(rest.len())..];
            continue;
        }
        if is_bidi_control(c) {
            assert!(!in_title, "{rel}: a bidi control in <title>");
            assert!(depth > 0, "{rel}: a bidi control outside <bdi>: {rest:.80}");
        }
        rest = &rest[c.len_utf8()..];
    }
    assert_eq!(depth, 0, "{rel}: unclosed <bdi>");
}

#[test]
fn names_cannot_reorder_the_page_around_them() {
    let (_tmp, out, _) = build(&hostile_site());
    let mut seen = 0;
    for rel in files(&out).iter().filter(|r| r.ends_with(".html")) {
        let page = read(&out, rel);
        if page.contains('\u{202e}') {
            seen += 1;
        }
        check_isolated(rel, &page);
    }
    // the front page, the languages list, profiles and language pages
    assert!(seen >= 4, "{seen} pages show the names");
    // every name on a profile is isolated, the username included
    let seg = builder::paths::segment("\u{202e}evil");
    let page = read(&out, &format!("users/{seg}/index.html"));
    assert!(page.contains("<h1><bdi>\u{202e}evil</bdi></h1>"), "{page}");
}

#[test]
fn embeds_and_boards_of_hostile_names_are_inert() {
    let site = hostile_site();
    let (_tmp, out, _) = build(&site);
    for name in HOSTILE {
        let seg = builder::paths::segment(name);
        let shown = builder::text::for_label(name);
        let rel = format!("users/{seg}/year.svg");
        let svg = read(&out, &rel);
        let doc = parse_svg(&rel, &svg);
        let heading = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("t"))
            .and_then(|n| n.text());
        let expected = format!("{shown} — XP in the last year");
        assert_eq!(heading, Some(expected.as_str()), "{rel}");
        let rel = format!("users/{seg}/badge.svg");
        parse_svg(&rel, &read(&out, &rel));
        for rel in [&rel, &format!("users/{seg}/year.svg")] {
            let text = read(&out, rel).to_lowercase();
            assert!(!text.contains("<script"), "{rel}");
            assert!(!text.contains("<svg onload"), "{rel}");
        }

        // a language's badge, as the web crate draws it per request
        let svg = builder::badge::level_badge(name, 6_400);
        let doc = parse_svg(name, &svg);
        let spoken = format!("{shown}: level 2 · 6,400 XP");
        assert_eq!(
            doc.root_element().attribute("aria-label"),
            Some(spoken.as_str())
        );
        assert!(!svg.to_lowercase().contains("<script"), "{svg}");
        let doc: serde_json::Value =
            serde_json::from_str(&builder::badge::shields_json(name, 6_400)).unwrap();
        assert_eq!(doc["label"], *name);
    }
    for b in site
        .leaderboards
        .boards
        .iter()
        .filter(|b| b.language.is_some())
    {
        let dir = builder::paths::leaderboard_dir(b.period, b.language.as_deref());
        let rel = format!("{}/index.json", dir.display());
        let doc: serde_json::Value = serde_json::from_str(&read(&out, &rel)).unwrap();
        assert_eq!(doc["language"].as_str(), b.language.as_deref(), "{rel}");
        let users: Vec<&str> = doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["user"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = b.entries.iter().map(|e| e.username.as_str()).collect();
        assert_eq!(users, expected, "{rel}");
        let page = read(&out, &format!("{}/index.html", dir.display()));
        check_isolated(&rel, &page);
    }
}

#[test]
fn a_hostile_site_name_is_inert_in_badges_and_snippets() {
    // the operator's choice, not a user's: escaped, as any text
    let name = "<script>alert(1)</script>]](x)";
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    builder(&out)
        .with_site_name(name)
        .build(&fixture())
        .unwrap();
    let svg = read(&out, "users/alice/badge.svg");
    let doc = parse_svg("badge.svg", &svg);
    let label = doc
        .descendants()
        .find(|n| n.has_tag_name("text"))
        .and_then(|n| n.text());
    assert_eq!(label, Some("<script>alert(1)</script>]](x)"));
    assert!(!svg.contains("<script"), "{svg}");
    let v: serde_json::Value =
        serde_json::from_str(&read(&out, "users/alice/shields.json")).unwrap();
    assert_eq!(v["label"], name);
    let page = read(&out, "users/alice/index.html");
    let code = unescape_html(&page);
    assert!(
        code.contains("[![\\<script\\>alert(1)\\</script\\>\\]\\](x) level](https://"),
        "{code}"
    );
    assert!(code.contains("alt=\"&lt;script&gt;alert(1)&lt;/script&gt;]](x) level\""));
}
