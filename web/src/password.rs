//! Passwords: argon2id with the argon2 crate's default (OWASP) parameters,
//! stored as PHC strings. Hashing runs on the blocking pool; a login for an
//! unknown user checks against a fixed hash so it takes as long as a real one.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use std::sync::LazyLock;

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
pub async fn hash(password: String) -> String {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .expect("hashing does not panic")
}

/// Whether `password` matches `stored` (a PHC string). An empty or
/// malformed `stored` matches nothing, after the same work as a real check.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
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
    .expect("verifying does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let a = hash("correct horse".into()).await;
        let b = hash("correct horse".into()).await;
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse".into(), Some(a.clone())).await);
        assert!(!verify("wrong horse".into(), Some(a)).await);
        assert!(!verify("decoy password, never used".into(), None).await);
        assert!(!verify("x".into(), Some("not a hash".into())).await);
    }
}
