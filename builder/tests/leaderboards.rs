//! The leaderboard pages and documents: every board written, entries in
//! the order and with the ranks given, JSON that reads back as the model,
//! and incremental builds that drop boards no longer present.

mod common;

use builder::model::{LeaderEntry, Leaderboard, Period, SiteModel};
use builder::paths;
use common::*;

/// Where a board's page and document are, relative to the output.
fn board_dir(b: &Leaderboard) -> String {
    paths::leaderboard_dir(b.period, b.language.as_deref())
        .to_string_lossy()
        .into_owned()
}

/// The rows of a board's table: (rank, username).
fn rows(page: &str) -> Vec<(u32, String)> {
    page.split("<tr data-rank=\"")
        .skip(1)
        .map(|row| {
            let (rank, rest) = row.split_once('"').unwrap();
            let name = rest.split("<bdi>").nth(1).unwrap();
            let name = name.split("</bdi>").next().unwrap();
            (rank.parse().unwrap(), unescape_html(name))
        })
        .collect()
}

#[test]
fn every_board_has_a_page_and_a_document() {
    let site = fixture();
    let (_tmp, out, _) = build(&site);
    assert!(exists(&out, "leaderboards/index.html"));
    assert!(exists(&out, "leaderboards/index.json"));
    for b in &site.leaderboards.boards {
        let dir = board_dir(b);
        assert!(exists(&out, &format!("{dir}/index.html")), "{dir}");
        assert!(exists(&out, &format!("{dir}/index.json")), "{dir}");
    }
    for period in Period::ALL {
        assert!(exists(
            &out,
            &format!("leaderboards/{}/index.html", period.slug())
        ));
    }
    // every page links to them
    assert!(read(&out, "index.html").contains("<a href=\"/leaderboards/\">Leaderboards</a>"));
}

#[test]
fn pages_list_the_entries_in_the_given_order_with_their_ranks() {
    let site = fixture();
    let (_tmp, out, _) = build(&site);
    for b in &site.leaderboards.boards {
        let page = read(&out, &format!("{}/index.html", board_dir(b)));
        let expected: Vec<(u32, String)> = b
            .entries
            .iter()
            .map(|e| (e.rank, builder::text::for_page(&e.username).into_owned()))
            .collect();
        assert_eq!(rows(&page), expected, "{}", board_dir(b));
        for e in &b.entries {
            assert!(page.contains(&format!("<a href=\"{}\">", paths::user_url(&e.username))));
        }
        if b.entries.is_empty() {
            assert!(page.contains("Nobody yet."), "{}", board_dir(b));
        }
    }
    // the tie keeps the order given, both at rank 2
    let week = read(&out, "leaderboards/week/index.html");
    assert_eq!(
        rows(&week)[1..3],
        [(2, "bob.builder".to_owned()), (2, "Ñandú".to_owned())]
    );
    // the hostile name is text, isolated, and links to its own profile
    assert!(week.contains(&format!(
        "<a href=\"{}\"><bdi>&lt;&#x2F;bdi&gt;\u{202e}&lt;b&gt;x&amp;y</bdi></a>",
        paths::user_url(boards::HOSTILE_LEADER)
    )));
    // the index shows the overall boards, and each language's periods
    let index = read(&out, "leaderboards/index.html");
    assert_eq!(rows(&index).len(), 4 + 1 + 3 + 3);
    for url in [
        "/leaderboards/week/languages/Rust/",
        "/leaderboards/all/languages/Rust/",
        "/leaderboards/all/languages/C~2FC~2B~2B/",
        "/leaderboards/year/languages/Zig/",
    ] {
        assert!(index.contains(&format!("href=\"{url}\"")), "{url}");
    }
}

#[test]
fn the_index_shows_the_top_ten_and_the_board_page_all() {
    let mut site = fixture();
    let board = &mut site.leaderboards.boards[1];
    assert_eq!(
        (board.period, board.language.as_deref()),
        (Period::Month, None)
    );
    board.entries = (1..=15)
        .map(|i| LeaderEntry {
            rank: i,
            username: format!("user{i:02}"),
            xp: 1000 - u64::from(i),
        })
        .collect();
    let (_tmp, out, _) = build(&site);
    let index = read(&out, "leaderboards/index.html");
    let month = index.split("data-period=\"month\"").nth(1).unwrap();
    let month = month.split("</section>").next().unwrap();
    assert_eq!(rows(month).len(), 10);
    assert_eq!(rows(month)[9], (10, "user10".to_owned()));
    assert_eq!(rows(&read(&out, "leaderboards/month/index.html")).len(), 15);
}

#[test]
fn documents_read_back_as_the_model() {
    let site = fixture();
    let (_tmp, out, _) = build(&site);
    let index: serde_json::Value =
        serde_json::from_str(&read(&out, "leaderboards/index.json")).unwrap();
    let listed = index["boards"].as_array().unwrap();
    assert_eq!(listed.len(), site.leaderboards.boards.len());
    for entry in listed {
        let keys: Vec<&str> = entry
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["language", "period", "url"]);
        let url = entry["url"].as_str().unwrap();
        let text = read(&out, url.trim_start_matches('/'));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["period"], entry["period"], "{url}");
        assert_eq!(doc["language"], entry["language"], "{url}");
        // the document, read back into the model's shape
        let period: Period = serde_json::from_value(doc["period"].clone()).unwrap();
        let language: Option<String> = serde_json::from_value(doc["language"].clone()).unwrap();
        let back = Leaderboard {
            period,
            language,
            since: serde_json::from_value(doc["since"].clone()).unwrap(),
            entries: doc["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    let keys: Vec<&str> =
                        e.as_object().unwrap().keys().map(String::as_str).collect();
                    assert_eq!(keys, ["rank", "user", "xp"]);
                    LeaderEntry {
                        rank: e["rank"].as_u64().unwrap() as u32,
                        username: e["user"].as_str().unwrap().to_owned(),
                        xp: e["xp"].as_u64().unwrap(),
                    }
                })
                .collect(),
        };
        let model = site
            .leaderboards
            .boards
            .iter()
            .find(|b| b.period == back.period && b.language == back.language)
            .unwrap();
        assert_eq!(&back, model, "{url}");
        assert_eq!(url, format!("/{}/index.json", board_dir(model)));
        // inert in HTML, exact as JSON
        assert!(!text.contains(['<', '>', '&']), "{url}");
    }
}

#[test]
fn a_period_without_a_board_is_empty() {
    let mut site = fixture();
    site.leaderboards
        .boards
        .retain(|b| !(b.period == Period::Year && b.language.is_none()));
    let (_tmp, out, _) = build(&site);
    assert!(read(&out, "leaderboards/year/index.html").contains("Nobody yet."));
    let doc: serde_json::Value =
        serde_json::from_str(&read(&out, "leaderboards/year/index.json")).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"period": "year", "language": null, "since": null, "entries": []})
    );
}

#[test]
fn language_pages_link_to_their_boards() {
    let (_tmp, out, _) = build(&fixture());
    let rust = read(&out, "languages/Rust/index.html");
    assert!(rust.contains("<a href=\"/leaderboards/week/languages/Rust/\">This week</a>"));
    assert!(rust.contains("<a href=\"/leaderboards/all/languages/Rust/\">All time</a>"));
    assert!(!rust.contains("/leaderboards/month/languages/Rust/"));
    assert!(!read(&out, "languages/Python/index.html").contains("Leaderboards in"));
    // and back, where the language has a page
    let board = read(&out, "leaderboards/all/languages/Rust/index.html");
    assert!(board.contains("<a href=\"/languages/Rust/\">"));
    let zig = read(&out, "leaderboards/year/languages/Zig/index.html");
    assert!(!zig.contains("/languages/Zig/\""));
}

#[test]
fn incremental_builds_drop_boards_no_longer_present() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let b = builder(&out);
    let mut site = fixture();
    b.build(&site).unwrap();
    assert!(exists(&out, "leaderboards/week/languages/Go/index.html"));
    site.leaderboards.boards.retain(|b| {
        !(b.language.as_deref() == Some("Go")
            || (b.language.as_deref() == Some("Rust") && b.period == Period::Week))
    });
    let report = b.build_users(&site, &[] as &[&str]).unwrap();
    assert_eq!(report.removed, 2);
    assert!(!exists(&out, "leaderboards/week/languages/Go"));
    assert!(!exists(&out, "leaderboards/week/languages/Rust"));
    assert!(exists(&out, "leaderboards/all/languages/Rust/index.html"));
    assert!(!read(&out, "leaderboards/index.json").contains("\"Go\""));
    // an incremental build writes the same tree as a full one
    let (_full_tmp, full, _) = build(&site);
    assert_eq!(files(&out), files(&full));
}

#[test]
fn two_boards_of_one_period_and_language_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut site: SiteModel = fixture();
    let twin = site.leaderboards.boards[4].clone();
    site.leaderboards.boards.push(twin);
    let err = builder(&tmp.path().join("site")).build(&site).unwrap_err();
    assert!(err.to_string().contains("duplicate leaderboard"), "{err}");
}
