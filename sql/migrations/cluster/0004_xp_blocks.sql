-- 0004 in cluster mode: xp_hourly as 0004 leaves it, made directly (a
-- cluster has no earlier xp_hourly to rebuild). See 0004_xp_blocks.sql.

CREATE TABLE IF NOT EXISTS xp_hourly
(
    received_month UInt32,
    user_id UInt64,
    local_date Date,
    local_hour UInt8,
    machine_id UInt64,
    language String,
    xp UInt64,
    marker UInt8
)
ENGINE = SummingMergeTree((xp, marker))
PARTITION BY received_month
ORDER BY (user_id, local_date, local_hour, machine_id, language);
