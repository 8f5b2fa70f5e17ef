//! The builder lease: when several nodes share the store, one of them at a
//! time runs the rollups and publishes the site.
//!
//! Time is cut into terms of a fixed length (`CODESTATS_BUILDER_LEASE_SECS`,
//! [`DEFAULT_TERM`]), and each term is a claim key (`sql::claims`: of all
//! the claims on a key, the earliest wins). A node holding term `t` claims
//! `t + 1` halfway through `t`, long before anybody else does, so it keeps
//! the lease for as long as it lives and reaches ClickHouse. A node that
//! holds nothing claims the current term at once and every next one as it
//! starts: it wins only a term nobody claimed earlier, that is when the
//! holder stopped renewing. A holder that failed to renew stops starting
//! runs [`MARGIN`] before its term ends; the next holder takes over from
//! the next term's start, after one claim's settle (≈1.3 s). So a dead
//! builder is replaced within two terms.
//!
//! A run already under way when its term ends may still finish; publishing
//! stays one at a time through the site's own lock (`.site.lock`, an
//! `flock` beside the output directory) when the nodes share the site's
//! volume. A new holder starts with a full run: its predecessor's
//! progress lived in another process.

use sql::{
    Db,
    claims::{self, Claim},
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::task::JoinHandle;

/// The default length of a term.
pub const DEFAULT_TERM: Duration = Duration::from_secs(20);
/// A holder that has not renewed stops starting runs this long before its
/// term ends.
pub const MARGIN: Duration = Duration::from_secs(2);
/// What the claim keys of the builder lease start with.
const KEY: &str = "lease:builder:";
/// No term held.
const NONE: u64 = u64::MAX;

/// The lease as this node holds it (a cheap clone of shared state).
#[derive(Clone)]
pub struct Lease {
    term: Duration,
    /// The first term of the current tenure, or [`NONE`].
    since: Arc<AtomicU64>,
    /// The last term held, or [`NONE`].
    until: Arc<AtomicU64>,
}

impl Lease {
    /// Starts contending for the lease on `db` with terms of `term`.
    pub fn start(db: Db, term: Duration) -> (Self, JoinHandle<()>) {
        let lease = Self::idle(term.max(MARGIN * 2));
        let task = tokio::spawn(lease.clone().contend(db));
        (lease, task)
    }

    /// Holding no term, contending for none.
    fn idle(term: Duration) -> Self {
        Self {
            term,
            since: Arc::new(AtomicU64::new(NONE)),
            until: Arc::new(AtomicU64::new(NONE)),
        }
    }

    /// A lease this node never holds: a node that shares the store and is
    /// no builder never runs the rollups.
    pub fn never() -> Self {
        Self::idle(DEFAULT_TERM)
    }

    /// The tenure this node holds the lease in now (its first term), if it
    /// does: a run may start. A new tenure means another node may have
    /// built in between.
    pub fn tenure(&self) -> Option<u64> {
        let now = now_ms();
        let term_ms = self.term.as_millis() as u64;
        let current = now / term_ms;
        let until = self.until.load(Ordering::Acquire);
        let since = self.since.load(Ordering::Acquire);
        if until == NONE || since == NONE || until < current {
            return None;
        }
        if until == current && now + MARGIN.as_millis() as u64 >= (current + 1) * term_ms {
            return None;
        }
        Some(since)
    }

    /// Notes term `term` won: the tenure goes on when it follows the last
    /// term held, else a new one starts.
    fn hold(&self, term: u64) {
        let until = self.until.load(Ordering::Acquire);
        let since = self.since.load(Ordering::Acquire);
        if since != NONE && until != NONE && until + 1 == term {
            self.until.store(term, Ordering::Release);
            return;
        }
        self.since.store(term, Ordering::Release);
        self.until.store(term, Ordering::Release);
        tracing::info!(term, "builder lease taken: this node renders the site");
    }

    async fn claim(&self, db: &Db, term: u64) -> bool {
        match claims::claim(db, &format!("{KEY}{term}")).await {
            Ok(Claim::Won(_)) => true,
            Ok(Claim::Lost) => false,
            Err(e) => {
                tracing::warn!(error = %e, term, "cannot claim the builder lease; trying again next term");
                false
            }
        }
    }

    async fn contend(self, db: Db) {
        let term_ms = self.term.as_millis() as u64;
        loop {
            let current = now_ms() / term_ms;
            let held = self.until.load(Ordering::Acquire);
            if held != NONE && held >= current {
                // Renew halfway through the term held.
                sleep_until_ms(held * term_ms + term_ms / 2).await;
                if self.claim(&db, held + 1).await {
                    self.hold(held + 1);
                } else {
                    tracing::warn!(
                        term = held + 1,
                        "builder lease not renewed: another node takes over"
                    );
                }
                sleep_until_ms((held + 1) * term_ms).await;
                if self.until.load(Ordering::Acquire) == held {
                    self.since.store(NONE, Ordering::Release);
                    self.until.store(NONE, Ordering::Release);
                }
            } else if self.claim(&db, current).await {
                self.hold(current);
            } else {
                sleep_until_ms((current + 1) * term_ms).await;
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn sleep_until_ms(at: u64) {
    let now = now_ms();
    if at > now {
        tokio::time::sleep(Duration::from_millis(at - now)).await;
    }
}
