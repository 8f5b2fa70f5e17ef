//! Machine API tokens: shown once, stored only as a SHA-256 hash.
//!
//! A token is a random UUID v4 (122 random bits), the shape WakaTime's
//! clients require of an API key (they refuse anything else before sending),
//! so one token serves the Code::Stats API and WakaTime's. Tokens made by
//! earlier versions (`cst_` and 256 random bits) keep working.
//!
//! A token carries enough random bits that a fast hash is enough: there is
//! no password to brute-force, and lookups stay cheap on the ingest hot path.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use subtle::ConstantTimeEq;

/// The prefix of tokens made by earlier versions (`cst_` + 43 characters of
/// URL-safe base64); they are hashed as they are.
pub const LEGACY_PREFIX: &str = "cst_";
/// The prefix WakaTime's current clients may put before a key.
pub const WAKA_PREFIX: &str = "waka_";

/// A freshly generated token; print it once, store [`hash`] of it.
pub fn generate() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// The form a token is hashed in: without a `waka_` prefix, and a UUID in
/// lowercase (clients may change either). Anything else is kept as sent.
pub fn canonical(token: &str) -> Cow<'_, str> {
    let bare = token.strip_prefix(WAKA_PREFIX).unwrap_or(token);
    match uuid::Uuid::try_parse(bare) {
        Ok(id) if bare.len() == 36 => Cow::Owned(id.hyphenated().to_string()),
        _ => Cow::Borrowed(token),
    }
}

/// The stored form of a token: 32 raw SHA-256 bytes of its [`canonical`] form.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(canonical(token).as_bytes()).into()
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
    fn tokens_are_random_uuids_and_hash_stably() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        let parsed = uuid::Uuid::try_parse(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a.len(), 36);
        assert_eq!(a, a.to_lowercase());
        assert_eq!(hash_hex(&a), hash_hex(&a));
        assert_ne!(hash_hex(&a), hash_hex(&b));
        assert!(hashes_equal(&hash(&a), &hash(&a)));
        assert!(!hashes_equal(&hash(&a), &hash(&b)));
    }

    #[test]
    fn one_token_in_every_spelling_clients_send() {
        let token = generate();
        for spelling in [
            token.clone(),
            format!("waka_{token}"),
            token.to_uppercase(),
            format!("waka_{}", token.to_uppercase()),
        ] {
            assert_eq!(hash(&spelling), hash(&token), "{spelling}");
        }
        // Not a UUID without its hyphens, braces or a URN: kept as sent.
        let simple = token.replace('-', "");
        assert_ne!(hash(&simple), hash(&token));
        assert_ne!(hash(&format!("{{{token}}}")), hash(&token));
        // Tokens of earlier versions are hashed as they are.
        let legacy = "cst_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd";
        assert_eq!(canonical(legacy), legacy);
        assert_ne!(hash(legacy), hash(&legacy.to_lowercase()));
    }
}
