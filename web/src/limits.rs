//! Failed logins, counted per account and per client address in a sliding
//! window; past the limit, logins for that key are refused (429) until the
//! oldest failure leaves the window. Memory is bounded: at most
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

    /// `Some(wait)` when `key` has used up its failures: try again after `wait`.
    pub fn blocked(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.get_mut(key)?;
        while list
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            list.pop_front();
        }
        if list.len() >= self.limit {
            let oldest = *list.front()?;
            Some(self.window.saturating_sub(now.duration_since(oldest)))
        } else {
            if list.is_empty() {
                map.remove(key);
            }
            None
        }
    }

    /// Counts a failure for `key`.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Forgets `key`'s failures (a successful login of that account).
    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The two counters of failed logins.
pub struct LoginLimits {
    /// By user id: only accounts that exist are counted, so made-up names
    /// cannot fill the table.
    pub account: FailureCounter,
    /// By client address.
    pub address: FailureCounter,
    /// Password-reset mails by user id (not failures, but bounded alike:
    /// [`RESET_MAILS_PER_HOUR`] an hour).
    pub mails: FailureCounter,
}

/// Password-reset mails one account is sent per hour at most.
pub const RESET_MAILS_PER_HOUR: usize = 3;

impl LoginLimits {
    pub fn new(config: &crate::WebConfig) -> Self {
        Self {
            account: FailureCounter::new(config.login_failures_per_account, config.login_window),
            address: FailureCounter::new(config.login_failures_per_address, config.login_window),
            mails: FailureCounter::new(RESET_MAILS_PER_HOUR, Duration::from_secs(3_600)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_passes() {
        let c = FailureCounter::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert_eq!(c.blocked("a"), None);
            c.fail("a");
        }
        assert!(c.blocked("a").is_some());
        assert_eq!(c.blocked("b"), None);
        std::thread::sleep(Duration::from_millis(210));
        assert_eq!(c.blocked("a"), None);
        c.fail("a");
        c.clear("a");
        assert_eq!(c.blocked("a"), None);
    }
}
