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
            arrayMap((t, next) -> if(next > t AND next - t <= {timeout} * 1000,
                                     toUInt64(next - t), toUInt64(0)),
                     ts, arrayPushBack(arrayPopFront(ts), toUInt64(0))) AS gaps
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
