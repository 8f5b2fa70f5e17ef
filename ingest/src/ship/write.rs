//! Writing one block: each of its INSERTs exactly once (the steps in
//! `ship/mod.rs`), and the rows of machines deleted meanwhile left out.
//!
//! In cluster mode each stage is one INSERT per shard, straight into that
//! shard's local table ([`Part`]): each part is settled on its own server
//! as a whole block is on a single server (`sql::cluster`).

use super::{
    Block, LANDED_SAMPLE_USERS, RETRY_FIRST, RETRY_LAST, SHUTDOWN_DRAIN, Stage, Stopped, Task,
};
use sql::{Db, heartbeats::HeartbeatRow, pulses::PulseRow};
use std::{borrow::Cow, collections::HashSet, sync::atomic::Ordering};
use tokio::time::Instant;

/// The rows of a block on one shard, and that shard's server (outside
/// cluster mode: the whole block, and the one server).
pub(super) struct Part {
    shard: usize,
    db: Db,
    /// More than one shard: rows are picked by shard.
    split: bool,
}

impl Part {
    /// The whole block, through `db` (reads only: a whole block is
    /// written by [`Task::settle`]).
    pub(super) fn whole(db: Db) -> Self {
        Self {
            shard: 0,
            db,
            split: false,
        }
    }

    fn holds(&self, task: &Task, user_id: u64) -> bool {
        !self.split || task.db.shard_of(user_id) == self.shard
    }

    /// `rows` of this part.
    fn pick<'r, R: Clone>(
        &self,
        task: &Task,
        rows: Cow<'r, [R]>,
        user: impl Fn(&R) -> u64,
    ) -> Cow<'r, [R]> {
        if !self.split {
            return rows;
        }
        Cow::Owned(
            rows.iter()
                .filter(|r| self.holds(task, user(r)))
                .cloned()
                .collect(),
        )
    }
}

impl Task {
    /// Makes sure `stage` of `block` is in ClickHouse exactly once: on
    /// every shard, the block's rows on it. `absent`: it is known not to be
    /// there (never started).
    pub(super) async fn settle(
        &self,
        block: &Block,
        stage: Stage,
        absent: bool,
    ) -> Result<(), Stopped> {
        let shards = self.db.shards();
        let split = shards.len() > 1;
        for (shard, db) in shards.into_iter().enumerate() {
            let part = Part { shard, db, split };
            self.settle_part(block, stage, &part, absent).await?;
        }
        Ok(())
    }

    async fn settle_part(
        &self,
        block: &Block,
        stage: Stage,
        part: &Part,
        mut absent: bool,
    ) -> Result<(), Stopped> {
        let query_id = match stage {
            Stage::Pulses => sql::blocks::pulses_query_id(block.id),
            Stage::Xp => sql::blocks::xp_query_id(block.id),
            Stage::Heartbeats => sql::heartbeats::query_id(block.id),
        };
        let mut pause = RETRY_FIRST;
        loop {
            if absent {
                match self.attempt(block, stage, part, &query_id).await? {
                    Ok(()) => return Ok(()),
                    Err(e) => tracing::warn!(
                        error = %e, block_id = block.id, ?stage,
                        "ingest log: insert failed; checking what landed"
                    ),
                }
                self.count_failure();
            }
            // In doubt: end the INSERT, then look.
            let check = async {
                sql::blocks::kill(&part.db, &query_id).await?;
                self.landed(block, stage, part).await
            };
            match tokio::time::timeout(self.insert_timeout, check).await {
                Ok(Ok(true)) => {
                    self.handle
                        .stats
                        .found_landed
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Ok(false)) => absent = true,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, block_id = block.id, "ingest log: cannot check a block yet");
                    self.count_failure();
                    absent = false;
                }
                Err(_) => {
                    self.count_failure();
                    absent = false;
                }
            }
            self.pause(&mut pause).await?;
        }
    }

    /// One INSERT of `stage`. Past the insert timeout it is ended with
    /// `KILL QUERY` (again every [`RETRY_LAST`]) but its request is kept
    /// open until ClickHouse answers it or the connection breaks: a request
    /// dropped unanswered might still be started by a slow server after
    /// the check that follows, and land twice.
    pub(super) async fn attempt(
        &self,
        block: &Block,
        stage: Stage,
        part: &Part,
        query_id: &str,
    ) -> Result<sql::Result<()>, Stopped> {
        let insert = self.insert(block, stage, part);
        tokio::pin!(insert);
        let mut kill_at = Instant::now() + self.insert_timeout;
        let mut slow = false;
        let mut kills = tokio::task::JoinSet::new();
        // On shutdown an INSERT under way may finish within the drain time.
        let mut give_up_at: Option<Instant> = None;
        loop {
            tokio::select! {
                outcome = &mut insert => return Ok(outcome),
                () = tokio::time::sleep_until(kill_at) => {
                    if !slow {
                        slow = true;
                        tracing::warn!(block_id = block.id, ?stage, "ingest log: insert too slow; ending it");
                        self.handle.stats.slow_inserts.fetch_add(1, Ordering::Relaxed);
                    }
                    // The KILL runs beside the INSERT, which is still awaited.
                    while kills.try_join_next().is_some() {}
                    if kills.is_empty() {
                        let (db, query_id) = (part.db.clone(), query_id.to_owned());
                        kills.spawn(async move {
                            if let Err(e) = sql::blocks::kill(&db, &query_id).await {
                                tracing::debug!(error = %e, "ingest log: cannot end a slow insert yet");
                            }
                        });
                    }
                    kill_at = Instant::now() + RETRY_LAST;
                }
                () = self.stop.cancelled(), if give_up_at.is_none() => {
                    give_up_at = Some(
                        self.drain_until
                            .unwrap_or_else(|| Instant::now() + SHUTDOWN_DRAIN),
                    );
                }
                () = tokio::time::sleep_until(give_up_at.unwrap_or(kill_at)), if give_up_at.is_some() => {
                    return Err(Stopped);
                }
            }
        }
    }

    /// The block's rows whose machine is not deleted: a machine deleted
    /// while its pulses waited here loses them, as its stored ones.
    pub(super) async fn live_rows<'b>(&self, block: &'b Block) -> sql::Result<Cow<'b, [PulseRow]>> {
        let deleted = self.deleted_machines(block).await?;
        *self.filtered.lock().unwrap_or_else(|e| e.into_inner()) = deleted.clone();
        if deleted.is_empty() {
            return Ok(Cow::Borrowed(&block.rows));
        }
        Ok(Cow::Owned(
            block
                .rows
                .iter()
                .filter(|r| !deleted.contains(&r.machine_id))
                .cloned()
                .collect(),
        ))
    }

    /// The block's heartbeats whose machine is not deleted (as
    /// [`Task::live_rows`]; the filter is the one that call saved).
    pub(super) fn live_heartbeats<'b>(&self, block: &'b Block) -> Cow<'b, [HeartbeatRow]> {
        let deleted = self
            .filtered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if deleted.is_empty() {
            return Cow::Borrowed(&block.heartbeats);
        }
        Cow::Owned(
            block
                .heartbeats
                .iter()
                .filter(|r| !deleted.contains(&r.machine_id))
                .cloned()
                .collect(),
        )
    }

    pub(super) async fn deleted_machines(&self, block: &Block) -> sql::Result<HashSet<u64>> {
        let mut machines: Vec<u64> = block
            .rows
            .iter()
            .map(|r| r.machine_id)
            .chain(block.heartbeats.iter().map(|r| r.machine_id))
            .collect();
        machines.sort_unstable();
        machines.dedup();
        Ok(sql::accounts::deleted_machines(&self.db, &machines)
            .await?
            .into_iter()
            .collect())
    }

    /// A machine deleted after the block's INSERTs left out the deleted
    /// ones (while an INSERT hung longer than the delete waits) may have had
    /// its rows land after the delete ran: they are deleted again.
    pub(super) async fn delete_late(&self, block: &Block) -> Result<(), Stopped> {
        self.until_answered("check for deleted machines", || async {
            let now = self.deleted_machines(block).await?;
            let filtered = self
                .filtered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for machine_id in now.difference(&filtered) {
                tracing::warn!(
                    machine_id,
                    block_id = block.id,
                    "ingest log: machine deleted while its block was written; deleting its rows again"
                );
                sql::accounts::delete_machine_rows(&self.db, *machine_id).await?;
            }
            Ok(())
        })
        .await
    }

    /// Counts a failed or unanswered ClickHouse request of the shipper.
    fn count_failure(&self) {
        self.handle.stats.failures.fetch_add(1, Ordering::Relaxed);
        crate::metrics::clickhouse_error("ship");
    }

    /// Runs `op` until ClickHouse answers it, pausing between attempts;
    /// each failure counts in the shipper's failures.
    pub(super) async fn until_answered<T, F, Fut>(
        &self,
        what: &'static str,
        mut op: F,
    ) -> Result<T, Stopped>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = sql::Result<T>>,
    {
        let mut pause = RETRY_FIRST;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    tracing::warn!(error = %e, what, "ingest log: clickhouse did not answer; retrying");
                    self.count_failure();
                }
            }
            self.pause(&mut pause).await?;
        }
    }

    pub(super) async fn insert(&self, block: &Block, stage: Stage, part: &Part) -> sql::Result<()> {
        let rows = part.pick(self, self.live_rows(block).await?, |r| r.user_id);
        match stage {
            Stage::Pulses => {
                if part.shard == 0 {
                    sql::languages::insert(&self.db, &block.languages).await?;
                }
                if !rows.is_empty() {
                    sql::blocks::insert_pulses(&part.db, block.id, &rows).await?;
                }
            }
            Stage::Xp => {
                if !rows.is_empty() {
                    sql::blocks::insert_xp(&part.db, block.id, block.received_at, &rows).await?;
                }
            }
            Stage::Heartbeats => {
                let beats = part.pick(self, self.live_heartbeats(block), |r| r.user_id);
                if !beats.is_empty() {
                    sql::heartbeats::insert(&part.db, block.id, &beats).await?;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn landed(
        &self,
        block: &Block,
        stage: Stage,
        part: &Part,
    ) -> sql::Result<bool> {
        let rows = part.pick(self, self.live_rows(block).await?, |r| r.user_id);
        if stage == Stage::Heartbeats {
            let beats = part.pick(self, self.live_heartbeats(block), |r| r.user_id);
            let users = sample_users(beats.iter().map(|r| r.user_id));
            if users.is_empty() {
                return Ok(true);
            }
            return sql::heartbeats::landed(&part.db, block.id, &users).await;
        }
        if rows.is_empty() {
            // Nothing of it is to be written (the first spellings go with
            // the first shard's part).
            return Ok(stage == Stage::Xp || part.shard != 0 || block.languages.is_empty());
        }
        match stage {
            Stage::Pulses => {
                let users = sample_users(rows.iter().map(|r| r.user_id));
                sql::blocks::pulses_landed(&part.db, block.id, block.received_at, &users).await
            }
            Stage::Xp => sql::blocks::xp_landed(&part.db, block.id, block.received_at).await,
            Stage::Heartbeats => unreachable!("answered above"),
        }
    }
}

/// Up to [`LANDED_SAMPLE_USERS`] distinct users, in order.
fn sample_users(ids: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut users: Vec<u64> = Vec::new();
    for id in ids {
        if !users.contains(&id) {
            users.push(id);
            if users.len() == LANDED_SAMPLE_USERS {
                break;
            }
        }
    }
    users
}
