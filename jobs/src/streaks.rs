//! Streaks of days with XP.

use chrono::NaiveDate;

/// (current, longest) streak for ascending, distinct dates with XP. The
/// current streak ends today, or yesterday while today has no XP yet.
pub fn streaks(days: &[NaiveDate], today: NaiveDate) -> (u32, u32) {
    let mut longest = 0;
    let mut run = 0;
    let mut previous: Option<NaiveDate> = None;
    for &day in days {
        run = match previous {
            Some(p) if p.succ_opt() == Some(day) => run + 1,
            _ => 1,
        };
        longest = longest.max(run);
        previous = Some(day);
    }
    let current = match previous {
        Some(last) if last == today || last.succ_opt() == Some(today) => run,
        _ => 0,
    };
    (current, longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn check(days: &[&str], today: &str, expected: (u32, u32)) {
        let days: Vec<NaiveDate> = days.iter().map(|s| d(s)).collect();
        assert_eq!(streaks(&days, d(today)), expected, "{days:?} today {today}");
    }

    #[test]
    fn streak_cases() {
        check(&[], "2024-03-01", (0, 0));
        check(&["2024-03-01"], "2024-03-01", (1, 1));
        // Yesterday keeps the streak alive until today is over.
        check(&["2024-02-29"], "2024-03-01", (1, 1));
        check(&["2024-02-28"], "2024-03-01", (0, 1));
        // Across a month end and a leap day.
        check(
            &["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"],
            "2024-03-01",
            (4, 4),
        );
        check(
            &["2023-12-30", "2023-12-31", "2024-01-01"],
            "2024-01-02",
            (3, 3),
        );
        // The longest run is in the past.
        check(
            &["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-10"],
            "2024-01-10",
            (1, 3),
        );
    }
}
