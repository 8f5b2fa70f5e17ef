//! Machine API tokens: shown once, stored only as a SHA-256 hash.
//!
//! A token carries 256 random bits, so a fast hash is enough: there is no
//! password to brute-force, and lookups stay cheap on the ingest hot path.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this, so a leaked one is easy to recognise.
pub const TOKEN_PREFIX: &str = "cst_";
const TOKEN_BYTES: usize = 32;

/// A freshly generated token; print it once, store [`hash`] of it.
pub fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token: 32 raw SHA-256 bytes.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The stored form as hex, the way the `machines` table keeps it.
pub fn hash_hex(token: &str) -> String {
    hex::encode(hash(token))
}

/// Compares two hashes without leaking where they differ.
pub fn hashes_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(hash_hex(&a), hash_hex(&a));
        assert_ne!(hash_hex(&a), hash_hex(&b));
        assert!(!hash_hex(&a).contains(&a[TOKEN_PREFIX.len()..]));
        assert!(hashes_equal(&hash(&a), &hash(&a)));
        assert!(!hashes_equal(&hash(&a), &hash(&b)));
    }
}
