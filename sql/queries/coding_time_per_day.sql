-- Coding time per day: seconds coded and coders per local day over a period, from heartbeats; one user's with username.
-- Counted as in coding_time_per_language. Days without coding time are
-- absent. Private users count.
-- @param since Date = 1970-01-01 first local day counted
-- @param until Date = 2105-12-31 last local day counted (inclusive)
-- @param timeout UInt64 = 900 keystroke timeout, seconds
-- @param username String = '' only this user (any case); '' for everyone
SELECT
    local_date AS day,
    intDiv(sum(millis), 1000) AS seconds,
    uniqExact(user_id) AS users
FROM
(
    SELECT user_id, local_date, arrayJoin(gaps) AS millis
    FROM
    (
        SELECT
            user_id,
            local_date,
            arraySort(groupArray(toUInt64(time) * 1000 + time_ms)) AS ts,
            arrayMap(i -> if(i < length(ts) AND ts[i + 1] - ts[i] <= {timeout} * 1000,
                             toUInt64(ts[i + 1] - ts[i]), toUInt64(0)),
                     arrayEnumerate(ts)) AS gaps
        FROM heartbeats
        WHERE (toDate(time + utc_offset * 60) AS local_date) BETWEEN {since} AND {until}
          AND ({username} = '' OR user_id IN
              (SELECT user_id FROM users FINAL WHERE deleted = 0 AND username_key = lower({username})))
        GROUP BY user_id, local_date
    )
)
WHERE millis > 0
GROUP BY day
ORDER BY day
