//! The leaderboards' JSON documents, with the read API's conventions
//! (names exact, `<>&` written as `\u003c\u003e\u0026`, [`inert`]):
//!
//! - one board, `leaderboards/PERIOD[/languages/LANG]/index.json`:
//!   `{"period":"week","language":null,"since":"2026-11-23",
//!   "entries":[{"rank":1,"user":"alice","xp":123}]}`, where `language` is
//!   `null` for the overall boards, `since` is the first local date counted
//!   (`null` for all time) and `entries` are in rank order;
//! - the index, `leaderboards/index.json`: `{"boards":[{"period":"week",
//!   "language":null,"url":"/leaderboards/week/index.json"}]}`, every
//!   board the site has (the overall ones first, then each language's by
//!   name), `url` the board's JSON document.

use chrono::NaiveDate;
use serde::Serialize;

use super::Boards;
use crate::json::inert;
use crate::model::Leaderboard;
use crate::paths;

/// File name of a board's document, beside its page.
pub(crate) const INDEX_JSON: &str = "index.json";

#[derive(Serialize)]
struct BoardJson<'a> {
    period: &'static str,
    language: Option<&'a str>,
    since: Option<NaiveDate>,
    entries: Vec<EntryJson<'a>>,
}

#[derive(Serialize)]
struct EntryJson<'a> {
    rank: u32,
    user: &'a str,
    xp: u64,
}

#[derive(Serialize)]
struct IndexJson<'a> {
    boards: Vec<IndexEntry<'a>>,
}

#[derive(Serialize)]
struct IndexEntry<'a> {
    period: &'static str,
    language: Option<&'a str>,
    url: String,
}

/// The document of one board.
pub(crate) fn board_json(board: &Leaderboard) -> Result<String, serde_json::Error> {
    let doc = BoardJson {
        period: board.period.slug(),
        language: board.language.as_deref(),
        since: board.since,
        entries: board
            .entries
            .iter()
            .map(|e| EntryJson {
                rank: e.rank,
                user: &e.username,
                xp: e.xp,
            })
            .collect(),
    };
    Ok(inert(serde_json::to_string(&doc)?))
}

/// The index of every board.
pub(crate) fn index_json(boards: &Boards<'_>) -> Result<String, serde_json::Error> {
    let doc = IndexJson {
        boards: boards
            .all()
            .map(|b| {
                let language = b.language.as_deref();
                IndexEntry {
                    period: b.period.slug(),
                    language,
                    url: format!("{}{INDEX_JSON}", paths::leaderboard_url(b.period, language)),
                }
            })
            .collect(),
    };
    Ok(inert(serde_json::to_string(&doc)?))
}
