-- Top languages: XP and coders per language over a period, most XP first.
-- Days are the coder's local days (coded_at + utc_offset). Private users count.
-- @param since Date = 1970-01-01 first local day counted
-- @param until Date = 2105-12-31 last local day counted (inclusive)
-- @param limit UInt64 = 20 how many languages to show
SELECT
    language,
    sum(xp) AS xp,
    uniqExact(user_id) AS users
FROM pulses
WHERE toDate(coded_at + utc_offset * 60) BETWEEN {since} AND {until}
GROUP BY language
ORDER BY xp DESC, language
LIMIT {limit}
