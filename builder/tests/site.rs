//! The fixture site, built into a tempdir: snapshots of what it renders and
//! the behaviour of full and incremental builds.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt as _;

use builder::model::SiteModel;
use common::*;

#[test]
fn tree() {
    let (_tmp, out, report) = build(&fixture());
    insta::assert_snapshot!(files(&out).join("\n"));
    assert_eq!(
        report,
        builder::BuildReport {
            full: true,
            // 4 profiles + front + language list + 4 languages + 404
            // + the leaderboards' index, 4 overall and 5 language boards
            pages: 11 + 1 + 4 + 5,
            // 3 per profile with XP + badge and year grid per profile
            // + 1 per language + front
            charts: 3 * 3 + 2 * 4 + 4 + 1,
            // read API, coding time and shields.io, per profile
            // + the leaderboards' index and boards
            json: 3 * 4 + 1 + 4 + 5,
            assets: builder::ASSETS.len(),
            removed: 0,
            users: 4,
            languages: 4,
        }
    );
    assert_eq!(report.files(), files(&out).len());
}

#[test]
fn pages() {
    let (_tmp, out, _) = build(&fixture());
    insta::assert_snapshot!("front", read(&out, "index.html"));
    insta::assert_snapshot!("profile", read(&out, "users/alice/index.html"));
    insta::assert_snapshot!("profile_without_xp", read(&out, "users/newbie/index.html"));
    insta::assert_snapshot!("languages", read(&out, "languages/index.html"));
    insta::assert_snapshot!("language", read(&out, "languages/C~2FC~2B~2B/index.html"));
    insta::assert_snapshot!("not_found", read(&out, "404.html"));
    insta::assert_snapshot!("leaderboards", read(&out, "leaderboards/index.html"));
    insta::assert_snapshot!(
        "leaderboard_language",
        read(&out, "leaderboards/week/languages/Rust/index.html")
    );
    insta::assert_snapshot!("leaderboards_json", read(&out, "leaderboards/index.json"));
    insta::assert_snapshot!(
        "leaderboard_json",
        read(&out, "leaderboards/week/index.json")
    );
}

#[test]
fn charts() {
    let (_tmp, out, _) = build(&fixture());
    insta::assert_snapshot!("hours_svg", read(&out, "users/alice/hours.svg"));
    insta::assert_snapshot!("weekdays_svg", read(&out, "users/alice/weekdays.svg"));
    insta::assert_snapshot!(
        "last_14_days_svg",
        read(&out, "users/alice/last-14-days.svg")
    );
    insta::assert_snapshot!("language_svg", read(&out, "languages/Rust/xp-per-day.svg"));
    insta::assert_snapshot!("xp_per_minute_svg", read(&out, "charts/xp-per-minute.svg"));
    insta::assert_snapshot!("badge_svg", read(&out, "users/alice/badge.svg"));
    insta::assert_snapshot!("shields_json", read(&out, "users/alice/shields.json"));
    insta::assert_snapshot!("year_svg", read(&out, "users/bob.builder/year.svg"));
    for rel in files(&out).iter().filter(|f| f.ends_with(".svg")) {
        let svg = read(&out, rel);
        if rel.starts_with("static/") {
            continue;
        }
        assert!(svg.starts_with("<svg"), "{rel}");
        assert!(svg.contains("<title>"), "{rel} has no title");
        assert!(svg.contains("role=\"img\""), "{rel}");
    }
}

#[test]
fn read_api_json_has_exactly_the_code_stats_keys() {
    let (_tmp, out, _) = build(&fixture());
    let text = read(&out, "api/users/alice.json");
    insta::assert_snapshot!("alice_json", text);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "dates",
            "languages",
            "machines",
            "new_xp",
            "total_xp",
            "user"
        ]
    );
    assert_eq!(v["user"], "alice");
    assert_eq!(v["total_xp"], 1_384_894);
    assert_eq!(v["new_xp"], 2_765);
    assert_eq!(v["languages"]["C/C++"]["xps"], 245_000);
    assert_eq!(v["languages"]["C/C++"]["new_xps"], 120);
    assert_eq!(v["machines"]["laptop"]["new_xps"], 2_000);
    for (_, lang) in v["languages"].as_object().unwrap() {
        let keys: Vec<&str> = lang
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["new_xps", "xps"]);
    }
    let dates = v["dates"].as_object().unwrap();
    assert!(
        dates
            .keys()
            .all(|d| d.len() == 10 && d.as_bytes()[4] == b'-')
    );
    // the unicode user's file is keyed by the lower-cased name
    let nandu: serde_json::Value =
        serde_json::from_str(&read(&out, "api/users/ñandú.json")).unwrap();
    assert_eq!(nandu["user"], "Ñandú");
    let newbie: serde_json::Value =
        serde_json::from_str(&read(&out, "api/users/newbie.json")).unwrap();
    assert_eq!(
        newbie,
        serde_json::json!({"user": "newbie", "total_xp": 0, "new_xp": 0,
            "machines": {}, "languages": {}, "dates": {}})
    );
}

#[test]
fn profile_shows_levels_rest_of_languages_and_setup() {
    let (_tmp, out, _) = build(&fixture());
    let alice = read(&out, "users/alice/index.html");
    // 10 level bars for languages + 1 total
    assert_eq!(alice.matches("class=\"bar\"").count(), 11);
    assert!(alice.contains("Also:"));
    assert!(alice.contains("href=\"/languages/Vue.js/\""));
    assert!(alice.contains("href=\"/languages/C~2FC~2B~2B/\""));
    assert!(alice.contains("class=\"c0 today\"") || alice.contains("today\"><title>2024-06-01"));
    let newbie = read(&out, "users/newbie/index.html");
    assert!(newbie.contains("No XP yet"));
    assert!(newbie.contains("codestats machines add newbie MACHINE"));
    assert!(newbie.contains("https:&#x2F;&#x2F;codestats.example.org/api/my/pulses"));
    // no charts without XP: the only image is the badge, which exists
    assert_eq!(newbie.matches("<img").count(), 1);
    assert!(newbie.contains("<img src=\"/users/newbie/badge.svg\""));
    assert!(exists(&out, "users/newbie/badge.svg"));
    assert!(!exists(&out, "users/newbie/hours.svg"));
    // unicode names keep their letters on disk and are percent-encoded in links
    assert!(exists(&out, "users/Ñandú/index.html"));
    assert!(read(&out, "index.html").contains("href=\"/users/%C3%91and%C3%BA/\""));
}

#[test]
fn full_build_removes_users_no_longer_present_and_leaves_no_staging() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let b = builder(&out);
    let mut site = fixture();
    b.build(&site).unwrap();
    assert!(exists(&out, "users/bob.builder/index.html"));
    without_user(&mut site, "bob.builder");
    b.build(&site).unwrap();
    assert!(!exists(&out, "users/bob.builder"));
    assert!(!exists(&out, "api/users/bob.builder.json"));
    assert_eq!(grep(&out, "bob.builder"), Vec::<String>::new());
    // only the output directory is left beside it, and the builds' lock
    let mut siblings: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    siblings.sort();
    assert_eq!(siblings, [".site.lock", "site"]);
}

#[test]
fn stale_staging_directories_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    fs::create_dir_all(tmp.path().join(".site.staging-1-2-3/users")).unwrap();
    builder(&out).build(&fixture()).unwrap();
    assert!(!tmp.path().join(".site.staging-1-2-3").exists());
}

fn inode(out: &std::path::Path, rel: &str) -> u64 {
    fs::metadata(out.join(rel)).unwrap().ino()
}

#[test]
fn incremental_build_rewrites_only_dirty_users_and_shared_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let b = builder(&out);
    let mut site = fixture();
    b.build(&site).unwrap();
    let bob_page = inode(&out, "users/bob.builder/index.html");
    let bob_json = inode(&out, "api/users/bob.builder.json");
    let alice_page = inode(&out, "users/alice/index.html");
    let front = inode(&out, "index.html");

    site.profiles[0].total_xp += 1000;
    site.front.total_xp += 1000;
    let report = b.build_users(&site, &["alice"]).unwrap();
    assert!(!report.full);
    assert_eq!(report.users, 1);
    // alice + front + language list + 4 languages + 404, and the
    // leaderboards' index, 4 overall and 5 language boards
    assert_eq!(report.pages, 8 + 10);
    // The read-API, coding-time and shields.io documents, and the
    // leaderboards' index and boards.
    assert_eq!(report.json, 3 + 10);
    assert_eq!(report.removed, 0);
    assert_eq!(inode(&out, "users/bob.builder/index.html"), bob_page);
    assert_eq!(inode(&out, "api/users/bob.builder.json"), bob_json);
    assert_ne!(inode(&out, "users/alice/index.html"), alice_page);
    assert_ne!(inode(&out, "index.html"), front);
    assert!(read(&out, "api/users/alice.json").contains("\"total_xp\":1385894"));
    // no temporary file is left behind
    assert!(files(&out).iter().all(|f| !f.contains(".tmp-")));
}

#[test]
fn a_user_who_turns_private_disappears_from_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let b = builder(&out);
    let mut site = fixture();
    b.build(&site).unwrap();
    assert!(!grep(&out, "bob.builder").is_empty());
    // the jobs leave private users out of every model
    without_user(&mut site, "bob.builder");
    let report = b.build_users(&site, &["bob.builder"]).unwrap();
    // Pages, read-API and coding-time documents.
    assert_eq!(report.removed, 3);
    assert_eq!(grep(&out, "bob.builder"), Vec::<String>::new());
    assert!(!exists(&out, "users/bob.builder"));
}

fn without_user(site: &mut SiteModel, name: &str) {
    site.profiles.retain(|p| p.username != name);
    site.front.most_active_week.retain(|u| u.name != name);
    site.front.newest_users.retain(|u| u.username != name);
    for l in &mut site.languages {
        l.top_users.retain(|u| u.name != name);
    }
    for b in &mut site.leaderboards.boards {
        b.entries.retain(|e| e.username != name);
    }
}

#[test]
fn incremental_build_drops_languages_no_longer_present() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let b = builder(&out);
    let mut site = fixture();
    b.build(&site).unwrap();
    site.languages.retain(|l| l.name != "Go");
    let report = b.build_users(&site, &[] as &[&str]).unwrap();
    assert_eq!(report.removed, 1);
    assert!(!exists(&out, "languages/Go"));
    assert!(exists(&out, "languages/Rust/index.html"));
}

#[test]
fn incremental_build_without_a_site_builds_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let report = builder(&out).build_users(&fixture(), &["alice"]).unwrap();
    assert!(report.full);
    assert_eq!(report.users, 4);
    assert!(exists(&out, "users/newbie/index.html"));
}

#[test]
fn private_names_appear_nowhere() {
    // What the jobs saw: one more user, private. The model they hand over
    // holds public users only; the builder must not invent anything.
    const MUST_NOT_APPEAR: &[&str] = &["secret_sam", "Secret Laptop"];
    let (_tmp, out, _) = build(&fixture());
    for name in MUST_NOT_APPEAR {
        assert_eq!(grep(&out, name), Vec::<String>::new(), "{name}");
        assert!(files(&out).iter().all(|f| !f.contains(name)), "{name}");
    }
}

#[test]
fn builds_are_deterministic() {
    let (_a, out_a, _) = build(&fixture());
    let (_b, out_b, _) = build(&fixture());
    assert_eq!(files(&out_a), files(&out_b));
    for rel in files(&out_a) {
        assert_eq!(
            fs::read(out_a.join(&rel)).unwrap(),
            fs::read(out_b.join(&rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn templates_and_assets_can_be_overridden_by_a_theme() {
    let tmp = tempfile::tempdir().unwrap();
    let templates = tmp.path().join("templates");
    fs::create_dir(&templates).unwrap();
    fs::write(
        templates.join("404.html"),
        "{% extends \"base.html\" %}{% block content %}<p>Custom {{ site.name }}</p>{% endblock content %}",
    )
    .unwrap();
    let assets = tmp.path().join("site");
    fs::create_dir(&assets).unwrap();
    fs::write(assets.join("style.css"), "body { color: teal }").unwrap();
    fs::write(assets.join("extra.txt"), "more").unwrap();
    let out = tmp.path().join("out");
    builder::Builder::new(&out)
        .unwrap()
        .with_theme_dir(tmp.path())
        .unwrap()
        .with_site_name("<My> stats")
        .build(&fixture())
        .unwrap();
    let page = read(&out, "404.html");
    assert!(page.contains("<p>Custom &lt;My&gt; stats</p>"), "{page}");
    // the others stay embedded
    assert!(read(&out, "index.html").contains("Top languages this week"));
    assert_eq!(read(&out, "static/style.css"), "body { color: teal }");
    assert_eq!(read(&out, "static/extra.txt"), "more");
    assert!(read(&out, "static/live.js").contains("EventSource"));
}

#[test]
fn broken_override_templates_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("templates")).unwrap();
    fs::write(tmp.path().join("templates/index.html"), "{% if %}").unwrap();
    let err = builder::Builder::new(tmp.path().join("out"))
        .unwrap()
        .with_theme_dir(tmp.path())
        .err()
        .expect("a broken template is an error");
    assert!(err.to_string().contains("template"), "{err}");
}

#[test]
fn duplicate_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("site");
    let mut site = fixture();
    let mut twin = site.profiles[0].clone();
    twin.username = "ALICE".to_owned();
    site.profiles.push(twin);
    let err = builder(&out).build(&site).unwrap_err();
    assert!(err.to_string().contains("duplicate username"), "{err}");
    assert!(!out.exists());

    let mut site = fixture();
    site.languages.push(site.languages[0].clone());
    let err = builder(&out).build(&site).unwrap_err();
    assert!(err.to_string().contains("duplicate language"), "{err}");
}
