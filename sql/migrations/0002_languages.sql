-- Canonical language names: the first spelling ever seen of a name, compared
-- case-insensitively, is the one stored in pulses. Read with
-- argMin(name, first_seen) GROUP BY name_key.

CREATE TABLE IF NOT EXISTS languages
(
    name_key String,
    name String,
    first_seen DateTime
)
ENGINE = MergeTree
ORDER BY name_key;
