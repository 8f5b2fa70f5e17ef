//! Failed logins, counted per account and per client address in a sliding
//! window; past the limit, logins for that key are refused (429) until the
//! oldest failure leaves the window. An attempt counts from the moment it
//! starts and is given back when it succeeds, so attempts sent at once are
//! counted too. Memory is bounded: at most
//! [`MAX_KEYS`] keys are tracked, the stalest dropped first.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Most keys one counter tracks.
pub const MAX_KEYS: usize = 100_000;

pub struct FailureCounter {
    limit: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureCounter {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `key` if it has any left: counted as a
    /// failure from now on (so attempts running at once count too), and
    /// given back with [`refund`](Self::refund) when it succeeds.
    /// `Err(wait)`: none left, try again after `wait`.
    pub fn attempt(&self, key: &str) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(list) = map.get_mut(key) {
            while list
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                list.pop_front();
            }
            if list.len() >= self.limit
                && let Some(oldest) = list.front()
            {
                return Err(self.window.saturating_sub(now.duration_since(*oldest)));
            }
        }
        self.record(&mut map, key, now);
        Ok(())
    }

    /// Gives back the latest attempt of `key` (it succeeded).
    pub fn refund(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(key) {
            list.pop_back();
            if list.is_empty() {
                map.remove(key);
            }
        }
    }

    fn record(&self, map: &mut HashMap<String, VecDeque<Instant>>, key: &str, now: Instant) {
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, list| list.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= MAX_KEYS {
                let stalest = map
                    .iter()
                    .min_by_key(|(_, list)| list.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    map.remove(&k);
                }
            }
        }
        let list = map.entry(key.to_owned()).or_default();
        list.push_back(now);
        while list.len() > self.limit {
            list.pop_front();
        }
    }
}

/// The two counters of failed logins.
pub struct LoginLimits {
    /// By account name (folded; made-up names too, so the answers do not
    /// tell which names exist) and client address.
    pub account: FailureCounter,
    /// By account name alone, from any address: a looser bound
    /// ([`ACCOUNT_ANY_ADDRESS_FACTOR`] × the per-address one) on guessing
    /// spread over many addresses.
    pub account_any_address: FailureCounter,
    /// By client address.
    pub address: FailureCounter,
    /// Password-reset mails by user id (not failures, but bounded alike:
    /// [`RESET_MAILS_PER_HOUR`] an hour).
    pub mails: FailureCounter,
    /// Password-reset requests by client address.
    pub reset_requests: FailureCounter,
}

/// Password-reset mails one account is sent per hour at most.
pub const RESET_MAILS_PER_HOUR: usize = 3;
/// Password-reset requests one client address may make per hour.
pub const RESET_REQUESTS_PER_ADDRESS_HOUR: usize = 10;
/// How many more failures an account takes from all addresses together
/// than from one.
pub const ACCOUNT_ANY_ADDRESS_FACTOR: usize = 10;

impl LoginLimits {
    pub fn new(config: &crate::WebConfig) -> Self {
        Self {
            account: FailureCounter::new(config.login_failures_per_account, config.login_window),
            account_any_address: FailureCounter::new(
                config.login_failures_per_account * ACCOUNT_ANY_ADDRESS_FACTOR,
                config.login_window,
            ),
            address: FailureCounter::new(config.login_failures_per_address, config.login_window),
            mails: FailureCounter::new(RESET_MAILS_PER_HOUR, Duration::from_secs(3_600)),
            reset_requests: FailureCounter::new(
                RESET_REQUESTS_PER_ADDRESS_HOUR,
                Duration::from_secs(3_600),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_limited_in_the_window_and_refunded_on_success() {
        let c = FailureCounter::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            assert!(c.attempt("a").is_ok());
        }
        let wait = c.attempt("a").unwrap_err();
        assert!(wait <= Duration::from_millis(300));
        assert!(c.attempt("b").is_ok(), "keys are counted apart");
        c.refund("a");
        assert!(c.attempt("a").is_ok());
        assert!(c.attempt("a").is_err());
        std::thread::sleep(Duration::from_millis(310));
        assert!(c.attempt("a").is_ok());
    }
}
