//! The leaderboard pages, from `SiteModel::leaderboards`:
//!
//! ```text
//! leaderboards/index.html, index.json         the overall boards' top 10, the languages with boards
//! leaderboards/PERIOD/index.html, index.json  one overall board
//! leaderboards/PERIOD/languages/LANG/index.html, index.json   one language's board
//! ```
//!
//! PERIOD is [`Period::slug`], LANG the language's [`paths::segment`]; the
//! documents' shapes are in [`json`]. Every period has an overall board
//! (an empty one where the model has none); a language has the boards the
//! model gives it. Entries are rendered exactly as given: the jobs sort
//! and rank them.

mod json;
mod view;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::model::{LanguageModel, Leaderboard, LeaderboardsModel, Period};
use crate::render::Renderer;
use crate::view::SiteView;
use crate::write::{Kind, Writer};
use crate::{Error, paths};

pub(crate) use view::PeriodLink;
use view::{LeaderboardView, LeaderboardsView};

/// The boards of one build, in the order pages list them.
pub(crate) struct Boards<'a> {
    /// The overall board of every period, in [`Period::ALL`] order.
    overall: Vec<Cow<'a, Leaderboard>>,
    /// Languages with boards, by name (case-insensitively, then as
    /// written), each with its boards in period order.
    languages: Vec<(&'a str, Vec<&'a Leaderboard>)>,
}

impl<'a> Boards<'a> {
    pub(crate) fn new(model: &'a LeaderboardsModel) -> Self {
        let overall = Period::ALL
            .iter()
            .map(|&period| {
                model
                    .boards
                    .iter()
                    .find(|b| b.period == period && b.language.is_none())
                    .map_or_else(
                        || {
                            Cow::Owned(Leaderboard {
                                period,
                                language: None,
                                since: None,
                                entries: Vec::new(),
                            })
                        },
                        Cow::Borrowed,
                    )
            })
            .collect();
        let mut by_language: BTreeMap<(String, &str), Vec<&Leaderboard>> = BTreeMap::new();
        for board in &model.boards {
            if let Some(language) = board.language.as_deref() {
                by_language
                    .entry((language.to_lowercase(), language))
                    .or_default()
                    .push(board);
            }
        }
        let languages = by_language
            .into_iter()
            .map(|((_, name), mut boards)| {
                boards.sort_by_key(|b| Period::ALL.iter().position(|p| *p == b.period));
                (name, boards)
            })
            .collect();
        Self { overall, languages }
    }

    /// Every board: the overall ones, then each language's.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Leaderboard> {
        self.overall
            .iter()
            .map(|b| b.as_ref())
            .chain(self.languages.iter().flat_map(|(_, b)| b.iter().copied()))
    }

    /// The periods `language` has boards for (every period overall).
    pub(crate) fn periods_of(&self, language: Option<&str>) -> Vec<Period> {
        match language {
            None => Period::ALL.to_vec(),
            Some(language) => self
                .languages
                .iter()
                .find(|(name, _)| *name == language)
                .map(|(_, boards)| boards.iter().map(|b| b.period).collect())
                .unwrap_or_default(),
        }
    }
}

/// Refuses two boards of one period and language: one page would replace
/// the other.
pub(crate) fn check_unique(model: &LeaderboardsModel) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for b in &model.boards {
        if !seen.insert((b.period, b.language.as_deref())) {
            return Err(Error::Duplicate {
                kind: "leaderboard",
                name: format!(
                    "{} {}",
                    b.period.slug(),
                    b.language.as_deref().unwrap_or("(overall)")
                ),
            });
        }
    }
    Ok(())
}

/// Writes every leaderboard page and document; a language board links to
/// the language's page when it is one of `languages`.
pub(crate) fn write(
    w: &mut Writer<'_>,
    renderer: &Renderer,
    site_view: &SiteView,
    boards: &Boards<'_>,
    languages: &[LanguageModel],
) -> Result<(), Error> {
    let root = Path::new(paths::LEADERBOARDS_DIR);
    let page = renderer.render(
        "leaderboards.html",
        &LeaderboardsView::new(site_view.clone(), boards),
    )?;
    w.write_content(&root.join("index.html"), page.as_bytes(), Kind::Page)?;
    let doc = json::index_json(boards)?;
    w.write_content(&root.join(json::INDEX_JSON), doc.as_bytes(), Kind::Json)?;
    let language_pages: HashSet<&str> = languages.iter().map(|l| l.name.as_str()).collect();
    for board in boards.all() {
        let language = board.language.as_deref();
        let dir = paths::leaderboard_dir(board.period, language);
        let view = LeaderboardView::new(
            site_view.clone(),
            board,
            &boards.periods_of(language),
            language.is_some_and(|l| language_pages.contains(l)),
        );
        let page = renderer.render("leaderboard.html", &view)?;
        w.write_content(&dir.join("index.html"), page.as_bytes(), Kind::Page)?;
        let doc = json::board_json(board)?;
        w.write_content(&dir.join(json::INDEX_JSON), doc.as_bytes(), Kind::Json)?;
    }
    Ok(())
}

/// Incremental builds: drops the language boards no longer in the model,
/// period by period.
pub(crate) fn remove_gone(w: &mut Writer<'_>, model: &LeaderboardsModel) -> Result<(), Error> {
    for period in Period::ALL {
        let keep: HashSet<String> = model
            .boards
            .iter()
            .filter(|b| b.period == period)
            .filter_map(|b| b.language.as_deref())
            .map(paths::segment)
            .collect();
        let dir = paths::leaderboard_dir(period, None).join(paths::BOARD_LANGUAGES_DIR);
        w.remove_dirs_except(&dir, &keep)?;
    }
    Ok(())
}
