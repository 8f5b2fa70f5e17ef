//! Passwords: argon2id with the argon2 crate's default (OWASP) parameters,
//! stored as PHC strings. Hashing runs on the blocking pool, at most
//! [`HASHES_AT_ONCE`] at a time (each takes 19 MiB and a core for a moment),
//! with at most [`HASHES_WAITING`] requests waiting for a turn: past that,
//! the request is refused (503) instead of queueing memory and threads.
//! A login for an unknown user checks against a fixed hash so it takes as
//! long as a real one.

use crate::error::WebError;
use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use std::sync::{
    LazyLock,
    atomic::{AtomicUsize, Ordering},
};
use tokio::sync::Semaphore;

/// Argon2 runs at once: one per core.
pub static HASHES_AT_ONCE: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
/// Requests that may wait for a turn to hash; one more is refused.
pub const HASHES_WAITING: usize = 256;

static TURNS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(*HASHES_AT_ONCE));
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` on the blocking pool when a turn is free.
async fn in_turn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, WebError> {
    if WAITING.fetch_add(1, Ordering::AcqRel) >= HASHES_WAITING {
        WAITING.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!("password hashing saturated; refusing a request");
        return Err(WebError::Busy);
    }
    let turn = TURNS.acquire().await;
    WAITING.fetch_sub(1, Ordering::AcqRel);
    let _turn = turn.map_err(|_| WebError::Busy)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WebError::Internal(format!("password hashing: {e}")))
}

/// A hash no password matches in practice, checked when there is no user,
/// so the answer's timing does not tell whether a username exists.
static DECOY: LazyLock<String> = LazyLock::new(|| hash_blocking("decoy password, never used"));

fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// The PHC string of `password` (argon2id, random salt).
pub async fn hash(password: String) -> Result<String, WebError> {
    in_turn(move || hash_blocking(&password)).await
}

/// Whether `password` matches `stored` (a PHC string). An empty or
/// malformed `stored` matches nothing, after the same work as a real check.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool, WebError> {
    in_turn(move || {
        let stored = stored.filter(|s| !s.is_empty());
        let real = stored.is_some();
        let text = stored.unwrap_or_else(|| DECOY.clone());
        let Ok(parsed) = PasswordHash::new(&text) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        real && matches
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse".into()).await.unwrap();
        let b = hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(
            verify("correct horse".into(), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(a)).await.unwrap());
        assert!(
            !verify("decoy password, never used".into(), None)
                .await
                .unwrap()
        );
        assert!(!verify("x".into(), Some("not a hash".into())).await.unwrap());
    }
}
