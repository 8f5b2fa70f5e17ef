-- WakaTime heartbeats: one row per heartbeat a WakaTime plugin sent (or an
-- import brought). Coding time is derived from them (sql/src/coding.rs).
--
-- heartbeat_id is a hash of what the heartbeat says (user, time, entity,
-- type, category, project, branch, language, is_write, machine), so the
-- same heartbeat sent twice has one id. ReplacingMergeTree keyed by it
-- keeps one row of each: ingest leaves out the copies it sees, merges the
-- rest (read with FINAL to count rows exactly; coding time is unchanged by
-- copies, which add no time).
--
-- One partition: a block's INSERT is one part, whole or absent, and copies
-- meet in merges whenever they were received.
--
-- entity_hash is sha256(user_id ":" entity), hex; entity itself is empty
-- unless the operator stores paths (CODESTATS_STORE_ENTITIES=1).

CREATE TABLE IF NOT EXISTS heartbeats
(
    heartbeat_id UInt64,
    batch_id UInt64,
    user_id UInt64,
    machine_id UInt64,
    time DateTime,
    time_ms UInt16,
    utc_offset Int16,
    entity_hash String,
    entity String,
    type String,
    category String,
    project String,
    branch String,
    language String,
    is_write UInt8,
    lines UInt32,
    line_additions UInt32,
    line_deletions UInt32,
    lineno UInt32,
    cursorpos UInt32,
    editor String,
    os String,
    machine String,
    received_at DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY (user_id, time, heartbeat_id);
