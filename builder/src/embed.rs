//! What a profile offers READMEs: `users/NAME/badge.svg` (the level
//! badge), `users/NAME/year.svg` (the year grid) and
//! `users/NAME/shields.json` (the badge as a shields.io endpoint), and the
//! copy-paste snippets the profile page shows for them.
//!
//! Snippets hold absolute URLs: the builder's public URL and
//! [`paths::user_url`]. They are plain text to the template, which escapes
//! them; inside an HTML snippet, attribute values are escaped by
//! [`xml_escape`], and Markdown alt texts escape `\ [ ] < >`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use crate::charts::xml_escape;
use crate::model::ProfileModel;
use crate::write::{Kind, Writer};
use crate::{Error, badge, paths, text, year};

/// The shields.io endpoint badge, given our document's URL as `url`.
pub const SHIELDS_ENDPOINT: &str = "https://img.shields.io/endpoint?url=";

/// Characters escaped in a query value: all but the unreserved ones.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `value` percent-encoded for a query string (`/` → `%2F`, `%` → `%25`).
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Writes a profile's badge, year grid and shields.io document; the badge
/// is labelled `label` (the site's name) and counts the total XP.
pub(crate) fn write(w: &mut Writer<'_>, label: &str, p: &ProfileModel) -> Result<(), Error> {
    let dir = paths::user_dir(&p.username);
    let svg = badge::level_badge(label, p.total_xp);
    w.write_content(&dir.join(paths::BADGE_SVG), svg.as_bytes(), Kind::Chart)?;
    let svg = year::standalone_svg(&p.username, p.today, &p.daily);
    w.write_content(&dir.join(paths::YEAR_SVG), svg.as_bytes(), Kind::Chart)?;
    let doc = badge::shields_json(label, p.total_xp);
    w.write_content(&dir.join(paths::SHIELDS_JSON), doc.as_bytes(), Kind::Json)?;
    Ok(())
}

/// Text for a Markdown alt text: what a label may hold, on one line, with
/// the characters that would end or open markup backslash-escaped.
fn markdown_text(text: &str) -> String {
    let mut out = String::new();
    for c in text::for_label(text).chars() {
        match c {
            '\\' | '[' | ']' | '<' | '>' => {
                out.push('\\');
                out.push(c);
            }
            '\t' | '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One embeddable image as Markdown and as HTML, linking to the profile.
#[derive(Debug, Serialize)]
pub struct Snippet {
    pub markdown: String,
    pub html: String,
}

impl Snippet {
    fn new(image: &str, alt: &str, link: &str) -> Self {
        Self {
            markdown: format!("[![{}]({image})]({link})", markdown_text(alt)),
            html: format!(
                "<a href=\"{}\"><img src=\"{}\" alt=\"{}\"></a>",
                xml_escape(link),
                xml_escape(image),
                xml_escape(alt)
            ),
        }
    }
}

/// One language's badge, as an example of `badge.svg?language=NAME`.
#[derive(Debug, Serialize)]
pub struct LanguageSnippet {
    pub name: String,
    /// The badge's absolute URL, the name percent-encoded.
    pub url: String,
    pub markdown: String,
}

/// The profile page's "Embed" section.
#[derive(Debug, Serialize)]
pub struct EmbedView {
    pub badge: Snippet,
    pub year: Snippet,
    pub shields: Snippet,
    /// With the user's top language, when there is one.
    pub language: Option<LanguageSnippet>,
}

impl EmbedView {
    /// Snippets for `p` on the site at `public_url` (no trailing `/`),
    /// whose badges are labelled `site_name`.
    pub fn new(public_url: &str, site_name: &str, p: &ProfileModel) -> Self {
        let profile = format!("{public_url}{}", paths::user_url(&p.username));
        let badge_url = format!("{profile}{}", paths::BADGE_SVG);
        let shields_url = format!(
            "{SHIELDS_ENDPOINT}{}",
            query_value(&format!("{profile}{}", paths::SHIELDS_JSON))
        );
        let alt = format!("{site_name} level");
        Self {
            badge: Snippet::new(&badge_url, &alt, &profile),
            year: Snippet::new(
                &format!("{profile}{}", paths::YEAR_SVG),
                "XP in the last year",
                &profile,
            ),
            shields: Snippet::new(&shields_url, &alt, &profile),
            language: p.languages.first().map(|l| {
                let url = format!("{badge_url}?language={}", query_value(&l.name));
                let alt = format!("{site_name} level in {}", l.name);
                LanguageSnippet {
                    name: l.name.clone(),
                    markdown: Snippet::new(&url, &alt, &profile).markdown,
                    url,
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values() {
        assert_eq!(query_value("C/C++"), "C%2FC%2B%2B");
        assert_eq!(query_value("Vue.js"), "Vue.js");
        assert_eq!(query_value("a b&c"), "a%20b%26c");
        assert_eq!(
            query_value("https://x.org/users/%C3%91/shields.json"),
            "https%3A%2F%2Fx.org%2Fusers%2F%25C3%2591%2Fshields.json"
        );
    }

    #[test]
    fn snippets_escape_what_they_hold() {
        let s = Snippet::new("https://x/a.svg", "[a]<b>\"\u{202e}", "https://x/?a&b");
        assert_eq!(
            s.markdown,
            "[![\\[a\\]\\<b\\>\"](https://x/a.svg)](https://x/?a&b)"
        );
        assert_eq!(
            s.html,
            "<a href=\"https://x/?a&amp;b\"><img src=\"https://x/a.svg\" alt=\"[a]&lt;b&gt;&quot;\"></a>"
        );
    }
}
