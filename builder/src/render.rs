//! Tera, built once: embedded templates (overridable from a directory),
//! autoescaping for every `.html` template, and our filters.
//!
//! The escape function is [`escape_html`]: tera's HTML escaping of the
//! text after [`text::for_page`], so no value a template prints can put a
//! control character or a noncharacter into a page.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};
use tera::{Context, Filter, Tera, Value};

use crate::model::Period;
use crate::{Error, paths, text};

/// The templates, embedded in the binary. A template directory given to
/// `Builder::with_theme_dir` replaces any of them by file name.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("index.html", include_str!("../../templates/index.html")),
    ("profile.html", include_str!("../../templates/profile.html")),
    (
        "language.html",
        include_str!("../../templates/language.html"),
    ),
    (
        "languages.html",
        include_str!("../../templates/languages.html"),
    ),
    (
        "leaderboards.html",
        include_str!("../../templates/leaderboards.html"),
    ),
    (
        "leaderboard.html",
        include_str!("../../templates/leaderboard.html"),
    ),
    ("404.html", include_str!("../../templates/404.html")),
    // Accounts on the web, rendered per request by `serve` (crate `web`).
    (
        "account/base.html",
        include_str!("../../templates/account/base.html"),
    ),
    (
        "account/signup.html",
        include_str!("../../templates/account/signup.html"),
    ),
    (
        "account/login.html",
        include_str!("../../templates/account/login.html"),
    ),
    (
        "account/reset_request.html",
        include_str!("../../templates/account/reset_request.html"),
    ),
    (
        "account/reset.html",
        include_str!("../../templates/account/reset.html"),
    ),
    (
        "account/message.html",
        include_str!("../../templates/account/message.html"),
    ),
    (
        "account/machines.html",
        include_str!("../../templates/account/machines.html"),
    ),
    (
        "account/preferences.html",
        include_str!("../../templates/account/preferences.html"),
    ),
];

/// The static assets, embedded in the binary, written under `/static/`.
/// Add new files of `site/` here.
pub const ASSETS: &[(&str, &[u8])] = &[
    ("style.css", include_bytes!("../../site/style.css")),
    ("favicon.svg", include_bytes!("../../site/favicon.svg")),
    ("live.js", include_bytes!("../../site/live.js")),
    ("account.js", include_bytes!("../../site/account.js")),
];

/// `1234567` → `1,234,567`.
pub fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A filter mapping a name to one of our URLs. Its output is safe: it only
/// holds `A-Z a-z 0-9 - _ . ~ % /` (see [`paths`]).
struct UrlFilter(fn(&str) -> String);

impl Filter for UrlFilter {
    fn filter(&self, value: &Value, _args: &HashMap<String, Value>) -> tera::Result<Value> {
        let name = value
            .as_str()
            .ok_or_else(|| tera::Error::msg("url filters take a string"))?;
        Ok(Value::String((self.0)(name)))
    }

    fn is_safe(&self) -> bool {
        true
    }
}

/// `{{ period | board_url(language=name) }}`: the URL of a leaderboard's
/// page, `language` null or absent for the overall board. Safe like
/// [`UrlFilter`]'s output.
struct BoardUrlFilter;

impl Filter for BoardUrlFilter {
    fn filter(&self, value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
        let slug = value
            .as_str()
            .ok_or_else(|| tera::Error::msg("board_url takes a period"))?;
        let period = Period::ALL
            .into_iter()
            .find(|p| p.slug() == slug)
            .ok_or_else(|| tera::Error::msg(format!("board_url: no period {slug:?}")))?;
        let language = match args.get("language") {
            None | Some(Value::Null) => None,
            Some(Value::String(l)) => Some(l.as_str()),
            Some(_) => return Err(tera::Error::msg("board_url: language is a string")),
        };
        Ok(Value::String(paths::leaderboard_url(period, language)))
    }

    fn is_safe(&self) -> bool {
        true
    }
}

/// The escape function of every `.html` template: characters no page may
/// hold become U+FFFD, then `& < > " ' /` become entities.
pub fn escape_html(input: &str) -> String {
    tera::escape_html(&text::for_page(input))
}

/// `{{ name | no_bidi }}`: a name without bidi controls, for text that
/// cannot hold a `<bdi>` (the `<title>`). Escaped afterwards as any value.
struct NoBidiFilter;

impl Filter for NoBidiFilter {
    fn filter(&self, value: &Value, _args: &HashMap<String, Value>) -> tera::Result<Value> {
        let name = value
            .as_str()
            .ok_or_else(|| tera::Error::msg("no_bidi takes a string"))?;
        Ok(Value::String(text::for_label(name).into_owned()))
    }
}

/// `{{ n | num }}`: an integer with thousands separators.
struct NumFilter;

impl Filter for NumFilter {
    fn filter(&self, value: &Value, _args: &HashMap<String, Value>) -> tera::Result<Value> {
        let n = value
            .as_u64()
            .or_else(|| value.as_f64().map(|f| f.max(0.0).round() as u64))
            .ok_or_else(|| tera::Error::msg("num takes a number"))?;
        Ok(Value::String(thousands(n)))
    }
}

/// Tera with the site's templates, escaping and filters; the builder renders
/// the static pages with it, `web` the account pages.
pub struct Renderer {
    tera: Tera,
    /// Appended to asset URLs (`?v=…`) so they can be cached for long.
    pub asset_version: String,
    /// The assets written under `/static/`: [`ASSETS`], with those of the
    /// theme's `site/` folder in place of (or beside) them.
    pub(crate) assets: Vec<(String, Vec<u8>)>,
}

impl Renderer {
    /// The embedded templates and assets, or a theme's: `theme/templates/*.html`
    /// and `theme/site/*` replace embedded files of the same name, or add to them.
    pub fn new(theme: Option<&Path>) -> Result<Self, Error> {
        let template_dir = theme.map(|t| t.join("templates"));
        let template_dir = template_dir.as_deref().filter(|d| d.is_dir());
        let mut sources: Vec<(String, String)> = TEMPLATES
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect();
        if let Some(dir) = template_dir {
            let entries = fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".html") {
                    continue;
                }
                let path = entry.path();
                let text =
                    fs::read_to_string(&path).map_err(|e| Error::io("read template", &path, e))?;
                match sources.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = text,
                    None => sources.push((name, text)),
                }
            }
        }
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.set_escape_fn(escape_html);
        tera.add_raw_templates(sources)?;
        tera.register_filter("user_url", UrlFilter(paths::user_url));
        tera.register_filter("language_url", UrlFilter(paths::language_url));
        tera.register_filter("api_user_url", UrlFilter(paths::api_user_url));
        tera.register_filter("api_coding_url", UrlFilter(paths::api_coding_url));
        tera.register_filter("board_url", BoardUrlFilter);
        tera.register_filter("num", NumFilter);
        tera.register_filter("no_bidi", NoBidiFilter);
        let mut assets: Vec<(String, Vec<u8>)> = ASSETS
            .iter()
            .map(|(n, b)| ((*n).to_owned(), b.to_vec()))
            .collect();
        if let Some(dir) = theme.map(|t| t.join("site")).filter(|d| d.is_dir()) {
            let entries = fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if !path.is_file() || name.starts_with('.') {
                    continue;
                }
                let bytes = fs::read(&path).map_err(|e| Error::io("read asset", &path, e))?;
                match assets.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = bytes,
                    None => assets.push((name, bytes)),
                }
            }
        }
        let mut hash = Sha256::new();
        for (name, bytes) in &assets {
            hash.update(name.as_bytes());
            hash.update(bytes);
        }
        let asset_version = hash
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self {
            tera,
            asset_version,
            assets,
        })
    }

    pub fn render(&self, template: &str, view: &impl Serialize) -> Result<String, Error> {
        let mut context = Context::from_serialize(view)?;
        context.insert("asset_version", &self.asset_version);
        Ok(self.tera.render(template, &context)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        for (v, s) in [
            (0, "0"),
            (12, "12"),
            (999, "999"),
            (1000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(v), s);
        }
    }

    #[test]
    fn autoescape_is_on_and_urls_are_safe() {
        let mut r = Renderer::new(None).unwrap();
        r.tera
            .add_raw_template(
                "t.html",
                "{{ name }}|{{ name | user_url }}|{{ name | language_url }}",
            )
            .unwrap();
        let out = r
            .render("t.html", &serde_json::json!({"name": "<a href='x'>&"}))
            .unwrap();
        assert_eq!(
            out,
            "&lt;a href=&#x27;x&#x27;&gt;&amp;|/users/~3Ca~20href~3D~27x~27~3E~26/|/languages/~3Ca~20href~3D~27x~27~3E~26/"
        );
    }

    #[test]
    fn board_urls() {
        let mut r = Renderer::new(None).unwrap();
        r.tera
            .add_raw_template(
                "t.html",
                "{{ p | board_url }}|{{ p | board_url(language=l) }}|{{ p | board_url(language=n) }}",
            )
            .unwrap();
        let out = r
            .render(
                "t.html",
                &serde_json::json!({"p": "month", "l": "C/C++", "n": null}),
            )
            .unwrap();
        assert_eq!(
            out,
            "/leaderboards/month/|/leaderboards/month/languages/C~2FC~2B~2B/|/leaderboards/month/"
        );
        let err = r.render(
            "t.html",
            &serde_json::json!({"p": "decade", "l": "x", "n": null}),
        );
        assert!(err.is_err());
    }

    #[test]
    fn escaping_replaces_what_pages_cannot_hold() {
        let mut r = Renderer::new(None).unwrap();
        r.tera
            .add_raw_template("t.html", "{{ name }}|{{ name | no_bidi }}")
            .unwrap();
        let out = r
            .render(
                "t.html",
                &serde_json::json!({"name": "\u{1b}<\u{202e}\u{ffff}"}),
            )
            .unwrap();
        assert_eq!(out, "\u{fffd}&lt;\u{202e}\u{fffd}|\u{fffd}&lt;\u{fffd}");
    }
}
