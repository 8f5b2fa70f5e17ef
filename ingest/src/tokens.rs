//! Which token belongs to whom, in memory.
//!
//! The whole set of active tokens (hashed) is held here and refreshed from
//! ClickHouse every [`TOKEN_REFRESH`], so a request never reaches ClickHouse
//! to check a token: unknown tokens are refused from memory (the negative
//! cache is the absence from this map), and a machine added, regenerated or
//! deactivated by the CLI takes effect within one refresh.

use sql::{Db, accounts::TokenOwner, token};
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::RwLock;

/// How often the token set is reloaded (the CLI's changes show up within this).
pub const TOKEN_REFRESH: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Tokens {
    by_hash: RwLock<HashMap<[u8; 32], Arc<TokenOwner>>>,
}

impl Tokens {
    /// Reloads every active token from ClickHouse.
    pub async fn refresh(&self, db: &Db) -> sql::Result<usize> {
        let owners = sql::accounts::active_tokens(db).await?;
        let mut map = HashMap::with_capacity(owners.len());
        for owner in owners {
            let mut hash = [0u8; 32];
            match hex_decode(&owner.token_hash, &mut hash) {
                Some(()) => {
                    map.insert(hash, Arc::new(owner));
                }
                None => tracing::warn!(machine_id = owner.machine_id, "malformed token hash"),
            }
        }
        let n = map.len();
        *self.by_hash.write().await = map;
        Ok(n)
    }

    /// The owner of `token`, if it is an active machine's.
    pub async fn owner(&self, token: &str) -> Option<Arc<TokenOwner>> {
        let hash = token::hash(token);
        let map = self.by_hash.read().await;
        let (stored, owner) = map.get_key_value(&hash)?;
        token::hashes_equal(stored, &hash).then(|| owner.clone())
    }
}

fn hex_decode(text: &str, out: &mut [u8; 32]) -> Option<()> {
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(())
}
