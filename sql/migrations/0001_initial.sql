-- Accounts and the pulse fact table.
-- users and machines change rarely and are read whole: ReplacingMergeTree
-- keyed by id keeps the row with the highest `version`; reads use FINAL.

CREATE TABLE IF NOT EXISTS users
(
    user_id UInt64,
    username String,
    username_key String,
    email String,
    private UInt8,
    created_at DateTime,
    deleted UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY user_id;

CREATE TABLE IF NOT EXISTS machines
(
    machine_id UInt64,
    user_id UInt64,
    name String,
    token_hash String,
    active UInt8,
    created_at DateTime,
    deleted UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY machine_id;

-- One row per XP item of a pulse. Partitioned by the month the batch was
-- received, so every batch (one received_at) lands in exactly one part:
-- an insert of a batch is all or nothing.
CREATE TABLE IF NOT EXISTS pulses
(
    pulse_id UInt64,
    batch_id UInt64,
    user_id UInt64,
    machine_id UInt64,
    coded_at DateTime,
    utc_offset Int16,
    language String,
    xp UInt32,
    received_at DateTime
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (user_id, coded_at, machine_id, language);
