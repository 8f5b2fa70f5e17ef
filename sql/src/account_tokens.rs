//! Secrets handed to a browser or a mailbox: sessions, password-reset
//! links and invitations. Each is 256 random bits shown once; the table
//! keeps only its SHA-256 hash (as for API tokens, a fast hash is enough
//! for a random secret), so a copy of the store opens no account.

use crate::{
    accounts::version_after,
    db::Db,
    error::Result,
    migrate::now_secs,
    token::{self, hash_hex},
};
use base64::Engine;
use clickhouse::Row;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A browser's login: the session cookie.
    Session,
    /// A password-reset link.
    Reset,
    /// A one-time sign-up link (`codestats invites create`).
    Invite,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Reset => "reset",
            Kind::Invite => "invite",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct AccountToken {
    pub token_hash: String,
    pub kind: String,
    /// The owner (0 for an invitation).
    pub user_id: u64,
    /// Unix nanoseconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u32,
    /// 1: logged out, spent or revoked.
    pub used: u8,
    pub version: u64,
}

const COLUMNS: &str = "token_hash, kind, user_id, created_at, expires_at, used, version";

/// A fresh secret: 256 random bits, URL-safe.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn write(db: &Db, row: &AccountToken) -> Result<()> {
    let mut insert = db.client().insert::<AccountToken>("account_tokens").await?;
    insert.write(row).await?;
    insert.end().await?;
    Ok(())
}

/// Creates a token of `kind` for `user_id`, valid for `ttl`; returns the
/// secret (shown once) and its row.
pub async fn create(
    db: &Db,
    kind: Kind,
    user_id: u64,
    ttl: Duration,
) -> Result<(String, AccountToken)> {
    let secret = generate();
    let now = crate::migrate::now_nanos();
    let row = AccountToken {
        token_hash: hash_hex(&secret),
        kind: kind.as_str().to_owned(),
        user_id,
        created_at: now,
        expires_at: now_secs().saturating_add(ttl.as_secs().min(u32::MAX as u64) as u32),
        used: 0,
        version: now,
    };
    write(db, &row).await?;
    Ok((secret, row))
}

/// The live token of `kind` whose secret is `secret`: not used, not
/// expired. The lookup is by hash; the hashes are compared again in
/// constant time.
pub async fn find(db: &Db, kind: Kind, secret: &str) -> Result<Option<AccountToken>> {
    let hash = hash_hex(secret);
    let row: Option<AccountToken> = db
        .client()
        .query(&format!(
            "SELECT {COLUMNS} FROM account_tokens FINAL WHERE token_hash = ? LIMIT 1"
        ))
        .bind(&hash)
        .fetch_optional()
        .await?;
    Ok(row.filter(|row| {
        token::hashes_equal(row.token_hash.as_bytes(), hash.as_bytes())
            && row.kind == kind.as_str()
            && row.used == 0
            && row.expires_at > now_secs()
    }))
}

/// The live token of `kind` behind `secret` and its user: [`find`], the
/// user not deleted, and the token made after the user's
/// `sessions_after` (a password change or "log out everywhere" voids the
/// sessions and reset links made before it).
pub async fn find_with_user(
    db: &Db,
    kind: Kind,
    secret: &str,
) -> Result<Option<(AccountToken, crate::accounts::User)>> {
    let Some(token) = find(db, kind, secret).await? else {
        return Ok(None);
    };
    let Some(user) = crate::accounts::user_by_id(db, token.user_id).await? else {
        return Ok(None);
    };
    let secrets = crate::accounts::secrets::get(db, user.user_id).await?;
    Ok((token.created_at > secrets.sessions_after).then_some((token, user)))
}

/// Marks the token used (logged out, spent).
pub async fn mark_used(db: &Db, row: &AccountToken) -> Result<()> {
    let mut row = row.clone();
    row.used = 1;
    row.version = version_after(row.version, crate::migrate::now_nanos());
    write(db, &row).await
}

/// Deletes tokens that expired a day ago or more (housekeeping).
pub async fn delete_expired(db: &Db) -> Result<()> {
    db.delete_where(
        "account_tokens",
        "expires_at < ?",
        now_secs().saturating_sub(86_400),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_are_found_by_secret_until_used_or_expired() {
        let db = crate::test_db!();
        let (secret, row) = create(&db, Kind::Reset, 7, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!row.token_hash.contains(&secret));
        assert_eq!(
            find(&db, Kind::Reset, &secret).await.unwrap(),
            Some(row.clone())
        );
        assert_eq!(find(&db, Kind::Session, &secret).await.unwrap(), None);
        assert_eq!(find(&db, Kind::Reset, "nope").await.unwrap(), None);
        mark_used(&db, &row).await.unwrap();
        assert_eq!(find(&db, Kind::Reset, &secret).await.unwrap(), None);
        let (expired, _) = create(&db, Kind::Invite, 0, Duration::ZERO).await.unwrap();
        assert_eq!(find(&db, Kind::Invite, &expired).await.unwrap(), None);
    }
}
