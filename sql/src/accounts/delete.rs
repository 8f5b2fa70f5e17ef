//! Deleting users and machines: marks first (tokens refused, pulses
//! dropped by any shipper), rows after, the user's own rows last, every
//! step safe to repeat (see ARCHITECTURE.md, "web/").

use super::{Machine, User, bump, get_user, machines, write_machine, write_user};
use crate::{db::Db, error::Result};

/// Deletes the user, their machines and every pulse they sent.
///
/// The account rows are marked deleted first, so their tokens are refused
/// before the pulses are deleted, and a pulse accepted until then is
/// deleted with the others.
///
/// `settle` is the wait between the two ([`DELETE_SETTLE`] for a live
/// service; zero where nothing else writes).
pub async fn delete_user(db: &Db, name: &str, settle: std::time::Duration) -> Result<User> {
    let user = mark_user_deleted(db, get_user(db, name).await?).await?;
    delete_user_rows(db, user.user_id).await?;
    tokio::time::sleep(settle).await;
    delete_user_rows(db, user.user_id).await?;
    delete_user_row(db, user.user_id).await?;
    Ok(user)
}

/// Users marked deleted whose rows may still be in the store (a delete
/// that stopped half way, or one waiting for its last pass), with the
/// version of their deleted mark (unix nanoseconds, about when it was made).
pub async fn deleted_users(db: &Db) -> Result<Vec<(u64, u64)>> {
    Ok(db
        .client()
        .query("SELECT user_id, version FROM users FINAL WHERE deleted = 1")
        .fetch_all()
        .await?)
}

/// The first step of [`delete_user`]: the user's machines, then the user,
/// are marked deleted (their tokens are refused from the next reload on,
/// and a shipper drops their pulses), and the user's email is no longer in
/// the newest row. Marking the machines first means a crash in between
/// leaves a user whose every machine is already refused. Safe to repeat.
pub async fn mark_user_deleted(db: &Db, mut user: User) -> Result<User> {
    mark_machines_deleted(db, user.user_id).await?;
    user.deleted = 1;
    user.email.clear();
    user.version = bump(user.version);
    write_user(db, &user).await?;
    Ok(user)
}

/// Marks every machine of the user deleted that is not marked yet.
pub async fn mark_machines_deleted(db: &Db, user_id: u64) -> Result<()> {
    for machine in machines::of_user(db, user_id).await? {
        write_machine(db, &deleted(machine)).await?;
    }
    Ok(())
}

/// The user's rows leave ClickHouse — pulses, hourly XP, password,
/// sessions and links, preferences (mutations: gone within moments). The user's own
/// row stays, marked deleted, until [`delete_user_row`], so a delete that
/// stops half way is found and finished. The machines' deleted marks stay
/// (they hold no XP), so a pulse still in some ingest log is dropped when
/// it is shipped. Safe to repeat.
pub async fn delete_user_rows(db: &Db, user_id: u64) -> Result<()> {
    delete_pulses(db, "user_id", user_id).await?;
    for table in ["user_secrets", "account_tokens", "user_preferences"] {
        db.delete_where(table, "user_id = ?", user_id).await?;
    }
    Ok(())
}

/// The last step of a delete, after the last [`delete_user_rows`]: the
/// user's rows themselves, every version (the older ones hold the email,
/// and without the deleted mark they would be the user again).
pub async fn delete_user_row(db: &Db, user_id: u64) -> Result<()> {
    db.delete_where("users", "user_id = ?", user_id).await
}

/// The row that marks `machine` deleted.
pub(crate) fn deleted(mut machine: Machine) -> Machine {
    machine.deleted = 1;
    machine.active = 0;
    machine.version = bump(machine.version);
    machine
}

/// Deletes the pulses (and their hourly aggregates) of a deleted machine
/// again: ingest's shipper calls it when a block of that machine may have
/// landed after the delete ran.
pub async fn delete_machine_rows(db: &Db, machine_id: u64) -> Result<()> {
    delete_pulses(db, "machine_id", machine_id).await
}

/// Deletes the pulses (and their hourly aggregates) and the heartbeats
/// whose `column`, a column name from code, is `id`.
pub(crate) async fn delete_pulses(db: &Db, column: &str, id: u64) -> Result<()> {
    for table in ["pulses", "xp_hourly", "heartbeats"] {
        db.delete_where(table, &format!("{column} = ?"), id).await?;
    }
    Ok(())
}
