//! The leaderboard pages' template contexts.

use serde::Serialize;

use super::Boards;
use crate::model::{Leaderboard, Period};
use crate::view::SiteView;

/// Entries of each overall board on the leaderboards' index.
pub const INDEX_TOP: usize = 10;

/// A period's heading: `This week`, `This month`, `This year`, `All time`.
pub fn title(period: Period) -> &'static str {
    match period {
        Period::Week => "This week",
        Period::Month => "This month",
        Period::Year => "This year",
        Period::All => "All time",
    }
}

/// A link to one period's board; templates build the URL with the
/// `board_url` filter from `period` (and the page's language).
#[derive(Debug, Serialize)]
pub struct PeriodLink {
    pub period: &'static str,
    pub title: &'static str,
    /// The page this link is on.
    pub current: bool,
}

impl PeriodLink {
    pub fn new(period: Period, current: Option<Period>) -> Self {
        Self {
            period: period.slug(),
            title: title(period),
            current: current == Some(period),
        }
    }

    /// Links to each of `periods`.
    pub fn all(periods: &[Period], current: Option<Period>) -> Vec<Self> {
        periods.iter().map(|p| Self::new(*p, current)).collect()
    }
}

#[derive(Debug, Serialize)]
pub struct EntryView {
    pub rank: u32,
    pub username: String,
    pub xp: u64,
}

#[derive(Debug, Serialize)]
pub struct BoardView {
    pub period: &'static str,
    pub title: &'static str,
    pub language: Option<String>,
    /// `YYYY-MM-DD`, the first date counted; none for all time.
    pub since: Option<String>,
    /// In the model's order.
    pub entries: Vec<EntryView>,
}

impl BoardView {
    /// `board` with its first `limit` entries.
    fn new(board: &Leaderboard, limit: usize) -> Self {
        Self {
            period: board.period.slug(),
            title: title(board.period),
            language: board.language.clone(),
            since: board.since.map(|d| d.format("%Y-%m-%d").to_string()),
            entries: board
                .entries
                .iter()
                .take(limit)
                .map(|e| EntryView {
                    rank: e.rank,
                    username: e.username.clone(),
                    xp: e.xp,
                })
                .collect(),
        }
    }
}

/// A language with boards, on the index.
#[derive(Debug, Serialize)]
pub struct LanguageBoards {
    pub name: String,
    pub periods: Vec<PeriodLink>,
}

/// `leaderboards/index.html`.
#[derive(Debug, Serialize)]
pub struct LeaderboardsView {
    pub site: SiteView,
    /// The overall boards, top [`INDEX_TOP`] each.
    pub boards: Vec<BoardView>,
    pub languages: Vec<LanguageBoards>,
}

impl LeaderboardsView {
    pub fn new(site: SiteView, boards: &Boards<'_>) -> Self {
        Self {
            site,
            boards: boards
                .overall
                .iter()
                .map(|b| BoardView::new(b, INDEX_TOP))
                .collect(),
            languages: boards
                .languages
                .iter()
                .map(|(name, b)| LanguageBoards {
                    name: (*name).to_owned(),
                    periods: b.iter().map(|b| PeriodLink::new(b.period, None)).collect(),
                })
                .collect(),
        }
    }
}

/// One board's page, overall or of a language.
#[derive(Debug, Serialize)]
pub struct LeaderboardView {
    pub site: SiteView,
    pub board: BoardView,
    /// The same boards' other periods.
    pub periods: Vec<PeriodLink>,
    /// The language has a page to link to.
    pub language_page: bool,
}

impl LeaderboardView {
    pub fn new(
        site: SiteView,
        board: &Leaderboard,
        periods: &[Period],
        language_page: bool,
    ) -> Self {
        Self {
            site,
            board: BoardView::new(board, usize::MAX),
            periods: PeriodLink::all(periods, Some(board.period)),
            language_page,
        }
    }
}
