//! Users and their machines.
//!
//! Both tables are ReplacingMergeTree: a change writes a new version of the
//! row, reads take the newest (`FINAL`). Every change reads the row first and
//! writes a version above the one it read ([`version_after`]), so a later
//! change wins whatever the clock does. Usernames are unique
//! case-insensitively even under concurrent sign-ups ([`create_user`]
//! claims the name first); machine names are unique per user, checked
//! before a write (one person changes their own machines).

use crate::{
    db::Db,
    error::{Error, Result},
    migrate::now_secs,
    names,
};

mod delete;
pub mod machines;
pub mod preferences;
pub mod secrets;

use clickhouse::Row;
pub use delete::{
    delete_machine_rows, delete_user, delete_user_row, delete_user_rows, deleted_users,
    mark_machines_deleted, mark_user_deleted,
};
pub(crate) use delete::{delete_pulses, deleted};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct User {
    pub user_id: u64,
    pub username: String,
    pub username_key: String,
    pub email: String,
    pub private: u8,
    /// Unix seconds.
    pub created_at: u32,
    pub deleted: u8,
    pub version: u64,
}

impl User {
    pub fn is_private(&self) -> bool {
        self.private != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Machine {
    pub machine_id: u64,
    pub user_id: u64,
    pub name: String,
    /// Hex SHA-256 of the API token; the token itself is never stored.
    pub token_hash: String,
    pub active: u8,
    pub created_at: u32,
    pub deleted: u8,
    pub version: u64,
}

impl Machine {
    pub fn is_active(&self) -> bool {
        self.active != 0
    }
}

/// What ingest needs to know about a token: whose it is.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct TokenOwner {
    pub token_hash: String,
    pub machine_id: u64,
    pub machine_name: String,
    pub user_id: u64,
    pub username: String,
    pub private: u8,
}

/// How long a delete waits between refusing the account's tokens and
/// deleting its pulses, so no pulse a running `serve` accepted meanwhile
/// survives: `serve` reloads tokens every 2 s; its shipper leaves out the
/// pulses of deleted machines ([`deleted_machines`]) right before every
/// INSERT, and an INSERT runs at most 15 s (ingest's `INSERT_TIMEOUT`)
/// before it is ended; plus margin. A pulse still in a log when the delete
/// runs is left out when it is shipped.
pub const DELETE_SETTLE: std::time::Duration = std::time::Duration::from_secs(18);

const USER_COLUMNS: &str =
    "user_id, username, username_key, email, private, created_at, deleted, version";

/// A version for a new row: the wall clock in nanoseconds.
pub(crate) fn next_version() -> u64 {
    crate::migrate::now_nanos().max(1)
}

/// The version of a change to a row whose current version is `current`,
/// with the clock at `now`: the clock when it is ahead of the row, and one
/// above the row otherwise (a clock stepped back, or a row written by a
/// machine whose clock ran ahead), so the change always replaces the row.
pub fn version_after(current: u64, now: u64) -> u64 {
    now.max(current.saturating_add(1))
}

/// The version of a change to a row read at version `current`.
pub(crate) fn bump(current: u64) -> u64 {
    version_after(current, next_version())
}

pub(crate) fn new_id() -> u64 {
    // Never 0, so 0 can mean "none" in aggregates.
    rand::random::<u64>().max(1)
}

pub(crate) async fn write_user(db: &Db, user: &User) -> Result<()> {
    let mut insert = db.client().insert::<User>("users").await?;
    insert.write(user).await?;
    insert.end().await?;
    Ok(())
}

pub(crate) async fn write_machine(db: &Db, machine: &Machine) -> Result<()> {
    let mut insert = db.client().insert::<Machine>("machines").await?;
    insert.write(machine).await?;
    insert.end().await?;
    Ok(())
}

pub async fn list_users(db: &Db) -> Result<Vec<User>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users FINAL WHERE deleted = 0 ORDER BY username_key, user_id"
    );
    Ok(db.client().query(&sql).fetch_all().await?)
}

/// The user named `name`, whatever its case. Should two rows ever hold
/// one name (a sign-up whose write outlived its claim), the earliest
/// created is the user, for every reader alike.
pub async fn find_user(db: &Db, name: &str) -> Result<Option<User>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users FINAL WHERE deleted = 0 AND username_key = ? \
         ORDER BY created_at, user_id LIMIT 1"
    );
    Ok(db
        .client()
        .query(&sql)
        .bind(names::fold(name))
        .fetch_optional()
        .await?)
}

pub async fn get_user(db: &Db, name: &str) -> Result<User> {
    find_user(db, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {name:?}")))
}

/// Adds a user (`codestats users add`): [`create_user`] without a password.
pub async fn add_user(db: &Db, name: &str, email: &str, private: bool) -> Result<User> {
    create_user(
        db,
        &NewUser {
            username: name,
            email,
            private,
            password_hash: "",
        },
    )
    .await
}

/// What a new account is made of.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub private: bool,
    /// A PHC string, or empty for none.
    pub password_hash: &'a str,
}

/// Creates a user whose name nobody holds, case-insensitively, even when
/// many requests ask for the same name at once: the name is claimed first
/// ([`claims`](crate::claims), which takes [`CLAIM_SETTLE`](crate::claims::CLAIM_SETTLE)),
/// and only the earliest claim writes a user. Everybody else gets
/// [`Error::Conflict`].
pub async fn create_user(db: &Db, new: &NewUser<'_>) -> Result<User> {
    let name = new.username;
    names::validate_username(name)?;
    let taken =
        |existing: &User| Error::Conflict(format!("user {name:?} (as {:?})", existing.username));
    if let Some(existing) = find_user(db, name).await? {
        return Err(taken(&existing));
    }
    let key = names::fold(name);
    let claim_key = format!("user:{key}");
    let won = match crate::claims::claim(db, &claim_key).await? {
        crate::claims::Claim::Won(won) => won,
        crate::claims::Claim::Lost => {
            return Err(Error::Conflict(format!("user {name:?}")));
        }
    };
    // A holder whose claim is done, or older than the claim window.
    if let Some(existing) = find_user(db, name).await? {
        return Err(taken(&existing));
    }
    let now = next_version();
    if now > won.deadline {
        return Err(Error::Conflict(format!(
            "user {name:?} (the claim on the name expired; try again)"
        )));
    }
    let user = User {
        user_id: new_id(),
        username: name.to_owned(),
        username_key: key,
        email: new.email.to_owned(),
        private: new.private.into(),
        created_at: now_secs(),
        deleted: 0,
        version: now,
    };
    if !new.password_hash.is_empty() {
        secrets::set_password(db, user.user_id, new.password_hash).await?;
    }
    write_user(db, &user).await?;
    crate::claims::finish(db, &claim_key, &won).await?;
    Ok(user)
}

/// The user with this id, unless deleted.
pub async fn user_by_id(db: &Db, user_id: u64) -> Result<Option<User>> {
    let sql =
        format!("SELECT {USER_COLUMNS} FROM users FINAL WHERE deleted = 0 AND user_id = ? LIMIT 1");
    Ok(db
        .client()
        .query(&sql)
        .bind(user_id)
        .fetch_optional()
        .await?)
}

/// Changes the user's contact address.
pub async fn set_email(db: &Db, user_id: u64, email: &str) -> Result<User> {
    let mut user = user_by_id(db, user_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("user {user_id}")))?;
    user.email = email.to_owned();
    user.version = bump(user.version);
    write_user(db, &user).await?;
    Ok(user)
}

pub async fn set_private(db: &Db, name: &str, private: bool) -> Result<User> {
    set_user_private(db, get_user(db, name).await?, private).await
}

/// Makes `user` (as read) private or public.
pub async fn set_user_private(db: &Db, mut user: User, private: bool) -> Result<User> {
    user.private = private.into();
    user.version = bump(user.version);
    write_user(db, &user).await?;
    Ok(user)
}

pub async fn list_machines(db: &Db, user: &User) -> Result<Vec<Machine>> {
    machines::of_user(db, user.user_id).await
}

async fn get_machine(db: &Db, user: &User, name: &str) -> Result<Machine> {
    list_machines(db, user)
        .await?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Error::NotFound(format!("machine {name:?} of user {:?}", user.username)))
}

/// Adds a machine and returns it with its API token, which is stored only
/// as a hash: this is the one time it can be shown.
pub async fn add_machine(db: &Db, username: &str, name: &str) -> Result<(Machine, String)> {
    let user = get_user(db, username).await?;
    machines::add(db, &user, name).await
}

pub async fn rename_machine(db: &Db, username: &str, from: &str, to: &str) -> Result<Machine> {
    let user = get_user(db, username).await?;
    machines::rename(db, get_machine(db, &user, from).await?, to).await
}

/// Gives the machine a new token; the old one stops working.
pub async fn regenerate_token(db: &Db, username: &str, name: &str) -> Result<(Machine, String)> {
    let user = get_user(db, username).await?;
    machines::regenerate(db, get_machine(db, &user, name).await?).await
}

/// A deactivated machine keeps its XP but its token is refused.
pub async fn set_machine_active(
    db: &Db,
    username: &str,
    name: &str,
    active: bool,
) -> Result<Machine> {
    let user = get_user(db, username).await?;
    machines::set_active(db, get_machine(db, &user, name).await?, active).await
}

/// Deletes the machine and the XP it sent: marks it deleted (its token is
/// refused), waits `settle` ([`DELETE_SETTLE`] for a live service), then
/// deletes its pulses.
pub async fn delete_machine(
    db: &Db,
    username: &str,
    name: &str,
    settle: std::time::Duration,
) -> Result<Machine> {
    let user = get_user(db, username).await?;
    let machine = machines::mark_deleted(db, get_machine(db, &user, name).await?).await?;
    tokio::time::sleep(settle).await;
    delete_pulses(db, "machine_id", machine.machine_id).await?;
    Ok(machine)
}

/// Which of `machine_ids` are deleted.
pub async fn deleted_machines(db: &Db, machine_ids: &[u64]) -> Result<Vec<u64>> {
    if machine_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = db.client().query(&format!(
        "SELECT machine_id FROM machines FINAL WHERE deleted = 1 AND machine_id IN ({})",
        crate::db::placeholders(machine_ids.len())
    ));
    for id in machine_ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all().await?)
}

/// Every token that may send pulses now: active machines of existing users.
pub async fn active_tokens(db: &Db) -> Result<Vec<TokenOwner>> {
    Ok(db
        .client()
        .query(
            "SELECT token_hash, machine_id, name AS machine_name, user_id, username, private \
             FROM (SELECT machine_id, user_id, name, token_hash FROM machines FINAL \
                   WHERE deleted = 0 AND active = 1) \
             ANY INNER JOIN (SELECT user_id, username, private FROM users FINAL WHERE deleted = 0) \
             USING user_id",
        )
        .fetch_all()
        .await?)
}

/// Names of every machine that was not deleted, by id.
pub async fn machine_names(db: &Db) -> Result<Vec<(u64, String)>> {
    Ok(db
        .client()
        .query("SELECT machine_id, name FROM machines FINAL WHERE deleted = 0")
        .fetch_all()
        .await?)
}

/// Writes many new users at once (`codestats seed`); names are validated,
/// uniqueness is the caller's.
pub async fn insert_users(db: &Db, users: &[User]) -> Result<()> {
    for user in users {
        names::validate_username(&user.username)?;
    }
    let mut insert = db.client().insert::<User>("users").await?;
    for user in users {
        insert.write(user).await?;
    }
    insert.end().await?;
    Ok(())
}

/// Writes many new machines at once (`codestats seed`).
pub async fn insert_machines(db: &Db, machines: &[Machine]) -> Result<()> {
    let mut insert = db.client().insert::<Machine>("machines").await?;
    for machine in machines {
        insert.write(machine).await?;
    }
    insert.end().await?;
    Ok(())
}

/// A fresh id for a user or machine (never 0).
pub fn fresh_id() -> u64 {
    new_id()
}

/// A version newer than any written before by this clock.
pub fn fresh_version() -> u64 {
    next_version()
}
