//! Code::Stats levels: `level = floor(0.025 · √xp)`.
//!
//! The XP at which level `L` starts is `ceil(L / 0.025)² = (40·L)² = 1600·L²`,
//! so everything here is computed in integers (no floating-point edge at
//! exact squares): level 1 starts at 1,600 XP, level 2 at 6,400.
//! The jobs crate reuses these functions.

/// `1 / 0.025`: level `L` starts at `(LEVEL_DIVISOR · L)²` XP.
pub const LEVEL_DIVISOR: u64 = 40;

/// The level reached with `xp` XP.
pub fn level(xp: u64) -> u32 {
    // floor(√xp / 40) == floor(floor(√xp) / 40)
    let level = xp.isqrt() / LEVEL_DIVISOR;
    u32::try_from(level).unwrap_or(u32::MAX)
}

/// The XP at which `level` starts (0 for level 0).
pub fn level_start_xp(level: u32) -> u64 {
    let root = LEVEL_DIVISOR * u64::from(level);
    root.saturating_mul(root)
}

/// How far `xp` is into its level, in percent: `0 ≤ p < 100`.
pub fn progress_percent(xp: u64) -> f64 {
    let level = level(xp);
    let start = level_start_xp(level);
    let next = level_start_xp(level.saturating_add(1));
    if next <= start {
        return 0.0;
    }
    (xp - start) as f64 / (next - start) as f64 * 100.0
}

/// The part of the current level's bar earned in the last 12 hours, in
/// percent of the level's span: never more than [`progress_percent`], so a
/// level-up within 12 hours highlights the whole bar so far.
pub fn new_progress_percent(xp: u64, new_xp: u64) -> f64 {
    let level = level(xp);
    let start = level_start_xp(level);
    let next = level_start_xp(level.saturating_add(1));
    if next <= start {
        return 0.0;
    }
    let in_level = xp - start;
    new_xp.min(in_level) as f64 / (next - start) as f64 * 100.0
}

/// XP still needed to reach the next level.
pub fn xp_to_next_level(xp: u64) -> u64 {
    level_start_xp(level(xp).saturating_add(1)).saturating_sub(xp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xp: u64, expected_level: u32, expected_progress: f64) {
        assert_eq!(level(xp), expected_level, "level of {xp} XP");
        let p = progress_percent(xp);
        assert!(
            (p - expected_progress).abs() < 1e-9,
            "progress of {xp} XP: {p}, expected {expected_progress}"
        );
    }

    #[test]
    fn boundaries() {
        check(0, 0, 0.0);
        check(1, 0, 100.0 / 1600.0);
        check(1599, 0, 1599.0 / 1600.0 * 100.0);
        check(1600, 1, 0.0);
        check(6399, 1, 4799.0 / 4800.0 * 100.0);
        check(6400, 2, 0.0);
        check(14_399, 2, 7999.0 / 8000.0 * 100.0);
        check(14_400, 3, 0.0);
    }

    #[test]
    fn matches_the_float_formula_away_from_boundaries() {
        for xp in (0..2_000_000u64).step_by(997) {
            let float_level = (0.025 * (xp as f64).sqrt()).floor() as u32;
            assert_eq!(level(xp), float_level, "{xp} XP");
        }
    }

    #[test]
    fn level_starts() {
        assert_eq!(level_start_xp(0), 0);
        assert_eq!(level_start_xp(1), 1600);
        assert_eq!(level_start_xp(2), 6400);
        assert_eq!(level_start_xp(10), 160_000);
        for l in 0..200 {
            let start = level_start_xp(l);
            // ceil(L / 0.025)² from the reference
            let reference = (f64::from(l) / 0.025).ceil().powi(2) as u64;
            assert_eq!(start, reference, "level {l}");
            assert_eq!(level(start), l);
            if start > 0 {
                assert_eq!(level(start - 1), l - 1);
            }
        }
    }

    #[test]
    fn new_progress_is_capped_by_progress() {
        assert_eq!(new_progress_percent(0, 0), 0.0);
        assert!((new_progress_percent(800, 400) - 25.0).abs() < 1e-9);
        // levelled up during the last 12 hours: only this level's part shows
        assert!((new_progress_percent(1600 + 480, 5000) - 10.0).abs() < 1e-9);
        assert_eq!(xp_to_next_level(0), 1600);
        assert_eq!(xp_to_next_level(1599), 1);
        assert_eq!(xp_to_next_level(1600), 4800);
    }

    #[test]
    fn huge_xp_does_not_overflow() {
        let l = level(u64::MAX);
        assert!(l > 0);
        let p = progress_percent(u64::MAX);
        assert!((0.0..=100.0).contains(&p));
    }
}
