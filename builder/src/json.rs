//! The Code::Stats read-API document, `GET /api/users/NAME`:
//! `{"user","total_xp","new_xp","machines":{name:{"xps","new_xps"}},
//! "languages":{name:{"xps","new_xps"}},"dates":{"YYYY-MM-DD":xp}}`,
//! keys exactly these (third-party clients parse them strictly).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::ProfileModel;

#[derive(Debug, Serialize)]
struct Xps {
    xps: u64,
    new_xps: u64,
}

#[derive(Debug, Serialize)]
struct UserJson<'a> {
    user: &'a str,
    total_xp: u64,
    new_xp: u64,
    machines: BTreeMap<&'a str, Xps>,
    languages: BTreeMap<&'a str, Xps>,
    dates: BTreeMap<String, u64>,
}

/// The coding-time document of a profile (`GET /api/users/NAME/coding-time`):
/// `{"user","total_seconds","languages":{name:seconds},
/// "editors":{name:seconds},"dates":{"YYYY-MM-DD":seconds}}`, escaped as
/// [`user_json`].
pub fn coding_json(p: &ProfileModel) -> Result<String, serde_json::Error> {
    let c = &p.coding;
    let doc = CodingJson {
        user: &p.username,
        total_seconds: c.total_seconds,
        languages: c
            .languages
            .iter()
            .map(|l| (l.name.as_str(), l.seconds))
            .collect(),
        editors: c
            .editors
            .iter()
            .map(|e| (e.name.as_str(), e.seconds))
            .collect(),
        dates: c
            .daily
            .iter()
            .map(|d| (d.date.format("%Y-%m-%d").to_string(), d.seconds))
            .collect(),
    };
    Ok(inert(serde_json::to_string(&doc)?))
}

#[derive(Debug, Serialize)]
struct CodingJson<'a> {
    user: &'a str,
    total_seconds: u64,
    languages: BTreeMap<&'a str, u64>,
    editors: BTreeMap<&'a str, u64>,
    dates: BTreeMap<String, u64>,
}

/// `text` with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026`
/// (the same JSON value), so a document stays inert even if something
/// embeds it in HTML. Every JSON document of the site goes through it.
pub(crate) fn inert(text: String) -> String {
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The read-API JSON of a profile. `<`, `>` and `&` are written as
/// `\u003c`, `\u003e`, `\u0026` (same JSON value) so the document stays
/// inert even if something embeds it in HTML. Names are written exactly as
/// in the models: `serde_json` escapes controls (`\u001b`), and every other
/// character is valid in a JSON string.
pub fn user_json(p: &ProfileModel) -> Result<String, serde_json::Error> {
    let doc = UserJson {
        user: &p.username,
        total_xp: p.total_xp,
        new_xp: p.new_xp,
        machines: p
            .machines
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    Xps {
                        xps: m.xp,
                        new_xps: m.new_xp,
                    },
                )
            })
            .collect(),
        languages: p
            .languages
            .iter()
            .map(|l| {
                (
                    l.name.as_str(),
                    Xps {
                        xps: l.xp,
                        new_xps: l.new_xp,
                    },
                )
            })
            .collect(),
        dates: p
            .daily
            .iter()
            .filter(|d| d.xp > 0)
            .map(|d| (d.date.format("%Y-%m-%d").to_string(), d.xp))
            .collect(),
    };
    Ok(inert(serde_json::to_string(&doc)?))
}
