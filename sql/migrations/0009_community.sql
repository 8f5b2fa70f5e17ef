-- Language aliases and leaderboard preferences. New tables only, so the
-- file can be applied again after an interruption.

-- An operator's language alias: pulses sent as `from_name` (any case) count
-- as `to_name` on every page, leaderboard, badge and read-API document.
-- `pulses` keeps the name as sent. `deleted` = 1: removed (`unalias`);
-- the newest version is the alias. Defaults live in the code
-- (sql/src/languages/aliases.rs) and a row overrides one.
CREATE TABLE IF NOT EXISTS language_aliases
(
    from_key String,
    from_name String,
    to_name String,
    deleted UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY from_key;

-- What a user chose about their public presence beyond going private.
-- No row: the defaults (listed on the leaderboards).
CREATE TABLE IF NOT EXISTS user_preferences
(
    user_id UInt64,
    leaderboards UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY user_id;
