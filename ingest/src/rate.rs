//! Per-token rate limit (a token bucket per machine, `governor`).

use crate::error::AppError;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use std::num::NonZeroU32;

pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<u64>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `per_minute` sustained, `burst` at once; zero values mean 1.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one pulse from `machine_id`'s bucket, or says when to retry.
    pub fn check(&self, machine_id: u64) -> Result<(), AppError> {
        self.limiter.check_key(&machine_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }
}
