//! Claims: deciding which of several concurrent requests gets a name (or
//! spends a one-time link) with ClickHouse as the only store, which has no
//! unique constraint and no transaction.
//!
//! Every contender writes a claim row `(key, claimed_at, claimant)` with
//! `claimed_at` taken from its clock *before* the INSERT, then waits until
//! [`CLAIM_SETTLE`] after `claimed_at` and reads the key's recent claims.
//! The earliest claim (by `claimed_at`, then `claimant`) wins; everybody
//! else lost. A contender whose INSERT took longer than [`CLAIM_ACK_LIMIT`]
//! gives up without reading (its claim may not have been visible in time).
//!
//! Why two winners are impossible: say A's claim is before B's and both
//! won. A's INSERT was acknowledged before `A.claimed_at + CLAIM_ACK_LIMIT`
//! (it did not give up), so A's row was readable from then on. B read at
//! `B.claimed_at + CLAIM_SETTLE` or later, which is after that moment even
//! if B's clock runs [`CLOCK_SKEW`] behind A's, so B saw A's earlier claim
//! and lost. The cost is one settle wait per claim, paid by sign-ups only.
//!
//! A claim counts for [`CLAIM_WINDOW`], until it is marked done: by the
//! loser at once, by the winner ([`finish`]) once what it claimed for is
//! written (the user row). A
//! winner checks the store for an existing holder after winning, so a done
//! claim, or one older than the window, no longer needs to count: a name
//! freed by a deleted account can be taken again at once, and a winner that
//! crashed blocks the name only for the window. The winner must finish
//! before its `deadline`, half the window, or give up.

use crate::migrate::now_nanos;
use crate::{db::Db, error::Result};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Longest a claim's INSERT may take; a slower one is given up.
pub const CLAIM_ACK_LIMIT: Duration = Duration::from_millis(1_000);
/// How far apart the clocks of the processes that claim may be.
pub const CLOCK_SKEW: Duration = Duration::from_millis(250);
/// How long after its `claimed_at` a contender reads the claims.
pub const CLAIM_SETTLE: Duration =
    Duration::from_millis(CLAIM_ACK_LIMIT.as_millis() as u64 + CLOCK_SKEW.as_millis() as u64);
/// How long a claim counts.
pub const CLAIM_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct ClaimRow {
    claim_key: String,
    claimed_at: u64,
    claimant: u64,
    done: u8,
}

/// The outcome of [`claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This claim is the earliest: the caller may go on, and must finish
    /// what it claimed for before `deadline` (unix nanoseconds) or give up.
    Won(Won),
    /// Another claim came first (or this one was too slow to count).
    Lost,
}

/// A won claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Won {
    pub deadline: u64,
    claimed_at: u64,
    claimant: u64,
}

async fn write(db: &Db, row: &ClaimRow) -> Result<()> {
    let mut insert = db.client().insert::<ClaimRow>("claims").await?;
    insert.write(row).await?;
    insert.end().await?;
    Ok(())
}

/// Claims `key` against concurrent claimants; takes [`CLAIM_SETTLE`].
pub async fn claim(db: &Db, key: &str) -> Result<Claim> {
    let claimant = rand::random::<u64>();
    // `claimed_at` orders the claims; the waits are measured on the
    // monotonic clock, so a step of the wall clock cannot shorten them.
    let claimed_at = now_nanos();
    let started = std::time::Instant::now();
    write(
        db,
        &ClaimRow {
            claim_key: key.to_owned(),
            claimed_at,
            claimant,
            done: 0,
        },
    )
    .await?;
    let took = started.elapsed();
    if took > CLAIM_ACK_LIMIT {
        tracing::warn!(
            ms = took.as_millis() as u64,
            "claim acknowledged too late to count; giving up"
        );
        let own = Won {
            deadline: 0,
            claimed_at,
            claimant,
        };
        finish(db, key, &own).await?;
        return Ok(Claim::Lost);
    }
    tokio::time::sleep(CLAIM_SETTLE.saturating_sub(started.elapsed())).await;
    let since = claimed_at.saturating_sub(CLAIM_WINDOW.as_nanos() as u64);
    let first: Option<(u64, u64)> = db
        .client()
        .query(
            "SELECT claimed_at, claimant FROM claims \
             WHERE claim_key = ? AND claimed_at >= ? \
             GROUP BY claimed_at, claimant HAVING max(done) = 0 \
             ORDER BY claimed_at, claimant LIMIT 1",
        )
        .bind(key)
        .bind(since)
        .fetch_optional()
        .await?;
    let own = Won {
        deadline: claimed_at + CLAIM_WINDOW.as_nanos() as u64 / 2,
        claimed_at,
        claimant,
    };
    if first == Some((claimed_at, claimant)) {
        Ok(Claim::Won(own))
    } else {
        // A lost claim stops counting at once, so it blocks nobody later.
        finish(db, key, &own).await?;
        Ok(Claim::Lost)
    }
}

/// Marks a won claim done: what it was for is written (and anybody who
/// claims the key from now on finds it), so the claim no longer blocks.
/// Lost claims are marked done by [`claim`] itself.
pub async fn finish(db: &Db, key: &str, won: &Won) -> Result<()> {
    write(
        db,
        &ClaimRow {
            claim_key: key.to_owned(),
            claimed_at: won.claimed_at,
            claimant: won.claimant,
            done: 1,
        },
    )
    .await
}

/// Deletes claims older than the window (housekeeping; they decide nothing).
pub async fn delete_expired(db: &Db) -> Result<()> {
    let before = now_nanos().saturating_sub(2 * CLAIM_WINDOW.as_nanos() as u64);
    db.delete_where("claims", "claimed_at < ?", before).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_of_many_concurrent_claims_wins() {
        let db = crate::test_db!();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move { claim(&db, "user:alice").await }));
        }
        let mut won = 0;
        for task in tasks {
            if let Claim::Won(_) = task.await.unwrap().unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 1);
        // Another key is independent; a later claim on the same key loses
        // while the winner's claim is open, and wins once it is done.
        let Claim::Won(bob) = claim(&db, "user:bob").await.unwrap() else {
            panic!("the only claim on bob lost");
        };
        assert_eq!(claim(&db, "user:bob").await.unwrap(), Claim::Lost);
        finish(&db, "user:bob", &bob).await.unwrap();
        assert!(matches!(
            claim(&db, "user:bob").await.unwrap(),
            Claim::Won(_)
        ));
    }
}
