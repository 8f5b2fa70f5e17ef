-- XP per user, machine, language and local hour, summed at insert time, so
-- rollup jobs read aggregates instead of raw pulses. SummingMergeTree sums
-- rows with the same key when parts merge: reads still GROUP BY and sum().
-- Deleting a user or machine deletes their rows here too (see accounts.rs).

CREATE TABLE IF NOT EXISTS xp_hourly
(
    user_id UInt64,
    local_date Date,
    local_hour UInt8,
    machine_id UInt64,
    language String,
    xp UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(local_date)
ORDER BY (user_id, local_date, local_hour, machine_id, language);

CREATE MATERIALIZED VIEW IF NOT EXISTS xp_hourly_mv TO xp_hourly AS
SELECT
    user_id,
    toDate(coded_at + utc_offset * 60) AS local_date,
    toUInt8(toHour(coded_at + utc_offset * 60)) AS local_hour,
    machine_id,
    language,
    toUInt64(sum(xp)) AS xp
FROM pulses
GROUP BY user_id, local_date, local_hour, machine_id, language;

-- Pulses stored before the view existed.
INSERT INTO xp_hourly
SELECT
    user_id,
    toDate(coded_at + utc_offset * 60) AS local_date,
    toUInt8(toHour(coded_at + utc_offset * 60)) AS local_hour,
    machine_id,
    language,
    toUInt64(sum(xp)) AS xp
FROM pulses
WHERE (SELECT count() FROM xp_hourly) = 0
GROUP BY user_id, local_date, local_hour, machine_id, language;
