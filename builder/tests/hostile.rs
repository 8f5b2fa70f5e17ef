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
];

fn hostile_site() -> SiteModel {
    let mut site = fixture();
    let languages: Vec<(&str, u64, u64)> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, 1000 * (i as u64 + 1), 10))
        .collect();
    let machines: Vec<(&str, u64, u64)> = HOSTILE.iter().map(|n| (*n, 100, 1)).collect();
    for (i, name) in HOSTILE.iter().enumerate() {
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
    }
    site
}

#[test]
fn hostile_names_are_inert_everywhere() {
    let (tmp, out, report) = build(&hostile_site());
    assert_eq!(report.users, 4 + 2 * HOSTILE.len());
    for rel in files(&out) {
        let text = String::from_utf8_lossy(&fs::read(out.join(&rel)).unwrap()).to_lowercase();
        // the only script is our own live-updates file
        assert_eq!(
            text.matches("<script").count(),
            text.matches("<script src=\"/static/live.js?v=").count(),
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

    // nothing was written beside the output directory
    let siblings: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
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
}
