//! The fixture's leaderboards.

use builder::model::{LeaderEntry, Leaderboard, LeaderboardsModel, Period};

use super::date;

/// A name that tries to close the `<bdi>` around it and reorder the page,
/// on the fixture's boards (no profile of its own).
pub const HOSTILE_LEADER: &str = "</bdi>\u{202e}<b>x&y";

/// Boards of several periods: a tie (7,000 XP shares rank 2), one language
/// with two periods, one with an empty board (Go, this week), one without a
/// language page (Zig), and a hostile name. Entries as the jobs hand them
/// over: sorted and ranked.
pub fn leaderboards() -> LeaderboardsModel {
    let board =
        |period, language: Option<&str>, since: Option<&str>, entries: &[(u32, &str, u64)]| {
            Leaderboard {
                period,
                language: language.map(str::to_owned),
                since: since.map(date),
                entries: entries
                    .iter()
                    .map(|(rank, username, xp)| LeaderEntry {
                        rank: *rank,
                        username: (*username).to_owned(),
                        xp: *xp,
                    })
                    .collect(),
            }
        };
    LeaderboardsModel {
        boards: vec![
            board(
                Period::Week,
                None,
                Some("2024-05-27"),
                &[
                    (1, "alice", 45_000),
                    (2, "bob.builder", 7_000),
                    (2, "Ñandú", 7_000),
                    (4, HOSTILE_LEADER, 12),
                ],
            ),
            board(
                Period::Month,
                None,
                Some("2024-06-01"),
                &[(1, "alice", 1_200)],
            ),
            board(
                Period::Year,
                None,
                Some("2024-01-01"),
                &[
                    (1, "alice", 300_000),
                    (2, "bob.builder", 20_000),
                    (3, "Ñandú", 7_000),
                ],
            ),
            board(
                Period::All,
                None,
                None,
                &[
                    (1, "alice", 1_384_894),
                    (2, "bob.builder", 35_000),
                    (3, "Ñandú", 7_000),
                ],
            ),
            board(
                Period::All,
                Some("Rust"),
                None,
                &[(1, "alice", 812_345), (2, "bob.builder", 5_000)],
            ),
            board(
                Period::Week,
                Some("Rust"),
                Some("2024-05-27"),
                &[(1, "alice", 40_000), (2, "bob.builder", 1_000)],
            ),
            board(Period::All, Some("C/C++"), None, &[(1, "alice", 245_000)]),
            board(Period::Week, Some("Go"), Some("2024-05-27"), &[]),
            board(
                Period::Year,
                Some("Zig"),
                Some("2024-01-01"),
                &[(1, HOSTILE_LEADER, 3)],
            ),
        ],
    }
}
