-- Daily active users: per local day, how many users coded and their XP.
-- A user is active on a day when they sent XP for it. Days nobody coded are absent.
-- @param since Date = 1970-01-01 first local day
-- @param until Date = 2105-12-31 last local day (inclusive)
SELECT
    toDate(coded_at + utc_offset * 60) AS day,
    uniqExact(user_id) AS users,
    sum(xp) AS xp
FROM pulses
WHERE day BETWEEN {since} AND {until}
GROUP BY day
ORDER BY day
