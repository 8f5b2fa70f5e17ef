-- Accounts on the web: passwords, sessions and one-time links, and the
-- claims that keep usernames unique when people sign up at the same time.
-- New tables only (18.16 has no ADD COLUMN IF NOT EXISTS), so the file can
-- be applied again after an interruption.

-- A user's password (argon2id, PHC string) and the time before which every
-- session of theirs is void ("log out everywhere", a password change).
-- Kept apart from `users`, which everything else reads whole.
CREATE TABLE IF NOT EXISTS user_secrets
(
    user_id UInt64,
    password_hash String,
    sessions_after UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY user_id;

-- Secrets handed to a browser or a mailbox, stored only as a SHA-256 hash:
-- sessions, password-reset links and invitations. `used` = 1: logged out,
-- spent or revoked.
CREATE TABLE IF NOT EXISTS account_tokens
(
    token_hash String,
    kind String,
    user_id UInt64,
    created_at UInt64,
    expires_at DateTime,
    used UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY token_hash;

-- Claims on a name (or a one-time link) by concurrent requests: the earliest
-- open claim wins (see sql/src/claims.rs). Rows are never updated: a claim
-- that did what it was for gets a second row with done = 1.
CREATE TABLE IF NOT EXISTS claims
(
    claim_key String,
    claimed_at UInt64,
    claimant UInt64,
    done UInt8
)
ENGINE = MergeTree
ORDER BY (claim_key, claimed_at, claimant);
