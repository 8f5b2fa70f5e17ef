//! A user's machines, changed by value: the web acts on the session's user
//! and a machine id looked up among that user's machines; the CLI resolves
//! names first (`super::rename_machine` and the like).

use super::{Machine, User, bump, deleted, new_id, next_version, write_machine};
use crate::{
    db::Db,
    error::{Error, Result},
    migrate::now_secs,
    names, token,
};

const MACHINE_COLUMNS: &str =
    "machine_id, user_id, name, token_hash, active, created_at, deleted, version";

/// The user's machines that are not deleted, by name.
pub async fn of_user(db: &Db, user_id: u64) -> Result<Vec<Machine>> {
    let sql = format!(
        "SELECT {MACHINE_COLUMNS} FROM machines FINAL \
         WHERE deleted = 0 AND user_id = ? ORDER BY name, machine_id"
    );
    Ok(db.client().query(&sql).bind(user_id).fetch_all().await?)
}

/// The machine `machine_id` if it is one of `user_id`'s (and not deleted).
pub async fn of_user_by_id(db: &Db, user_id: u64, machine_id: u64) -> Result<Machine> {
    of_user(db, user_id)
        .await?
        .into_iter()
        .find(|m| m.machine_id == machine_id)
        .ok_or_else(|| Error::NotFound("machine".into()))
}

/// Adds a machine named `name` to `user`; returns it with its API token,
/// stored only as a hash: this is the one time it can be shown.
pub async fn add(db: &Db, user: &User, name: &str) -> Result<(Machine, String)> {
    names::validate_machine_name(name)?;
    if of_user(db, user.user_id)
        .await?
        .iter()
        .any(|m| m.name == name)
    {
        return Err(Error::Conflict(format!(
            "machine {name:?} of user {:?}",
            user.username
        )));
    }
    let token = token::generate();
    let machine = Machine {
        machine_id: new_id(),
        user_id: user.user_id,
        name: name.to_owned(),
        token_hash: token::hash_hex(&token),
        active: 1,
        created_at: now_secs(),
        deleted: 0,
        version: next_version(),
    };
    write_machine(db, &machine).await?;
    Ok((machine, token))
}

/// Renames `machine` (as read); another machine of its user may not have
/// the name.
pub async fn rename(db: &Db, mut machine: Machine, to: &str) -> Result<Machine> {
    names::validate_machine_name(to)?;
    if machine.name != to
        && of_user(db, machine.user_id)
            .await?
            .iter()
            .any(|m| m.name == to && m.machine_id != machine.machine_id)
    {
        return Err(Error::Conflict(format!("machine {to:?}")));
    }
    machine.name = to.to_owned();
    machine.version = bump(machine.version);
    write_machine(db, &machine).await?;
    Ok(machine)
}

/// Gives `machine` a new token; the old one stops working.
pub async fn regenerate(db: &Db, mut machine: Machine) -> Result<(Machine, String)> {
    let token = token::generate();
    machine.token_hash = token::hash_hex(&token);
    machine.version = bump(machine.version);
    write_machine(db, &machine).await?;
    Ok((machine, token))
}

/// A deactivated machine keeps its XP but its token is refused.
pub async fn set_active(db: &Db, mut machine: Machine, active: bool) -> Result<Machine> {
    machine.active = active.into();
    machine.version = bump(machine.version);
    write_machine(db, &machine).await?;
    Ok(machine)
}

/// Marks `machine` deleted: its token is refused from the next reload on;
/// its rows go with [`super::delete_machine_rows`].
pub async fn mark_deleted(db: &Db, machine: Machine) -> Result<Machine> {
    let machine = deleted(machine);
    write_machine(db, &machine).await?;
    Ok(machine)
}
