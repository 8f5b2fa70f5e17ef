-- Coding time per language: seconds coded and coders per language over a period, from heartbeats, most time first.
-- Per user and local day (time + utc_offset), heartbeats in time order: the
-- gap to the next one counts when it is at most the timeout, for the earlier
-- heartbeat's language (as profiles count it). Copies of a heartbeat add
-- nothing. Private users count.
-- @param since Date = 1970-01-01 first local day counted
-- @param until Date = 2105-12-31 last local day counted (inclusive)
-- @param timeout UInt64 = 900 keystroke timeout, seconds
SELECT
    language,
    intDiv(sum(millis), 1000) AS seconds,
    uniqExact(user_id) AS users
FROM
(
    SELECT user_id, beat.2 AS language, gap AS millis
    FROM
    (
        SELECT
            user_id,
            local_date,
            arraySort(groupArray((toUInt64(time) * 1000 + time_ms, language))) AS beats,
            arrayMap(b -> b.1, beats) AS ts,
            arrayMap((t, next) -> if(next > t AND next - t <= {timeout} * 1000,
                                     toUInt64(next - t), toUInt64(0)),
                     ts, arrayPushBack(arrayPopFront(ts), toUInt64(0))) AS gaps
        FROM heartbeats
        WHERE (toDate(time + utc_offset * 60) AS local_date) BETWEEN {since} AND {until}
        GROUP BY user_id, local_date
    )
    ARRAY JOIN beats AS beat, gaps AS gap
    WHERE millis > 0
)
GROUP BY language
ORDER BY seconds DESC, language
