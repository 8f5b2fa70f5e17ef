-- Retention of new users: per weekly cohort, how many still code N weeks later.
-- A user's cohort is the week (Monday, local days) of their first XP ever;
-- weeks_later 0 is that week. retention = active_users / cohort_size.
-- Users who never sent XP are in no cohort.
-- @param since Date = 1970-01-01 first cohort: the week holding this local day
-- @param until Date = 2105-12-31 last cohort: the week holding this local day
-- @param weeks UInt64 = 12 how many weeks after the first to follow
SELECT
    cohort,
    weeks_later,
    active_users,
    cohort_size,
    round(active_users / cohort_size, 3) AS retention
FROM
(
    SELECT
        cohort,
        toRelativeWeekNum(week) - toRelativeWeekNum(cohort) AS weeks_later,
        uniqExact(user_id) AS active_users
    FROM
    (
        SELECT DISTINCT user_id, toMonday(toDate(coded_at + utc_offset * 60)) AS week
        FROM pulses
    )
    ANY INNER JOIN
    (
        SELECT user_id, min(toMonday(toDate(coded_at + utc_offset * 60))) AS cohort
        FROM pulses
        GROUP BY user_id
    ) USING user_id
    WHERE addDays(cohort, 6) >= {since} AND cohort <= {until} AND weeks_later <= {weeks}
    GROUP BY cohort, weeks_later
)
ANY INNER JOIN
(
    SELECT cohort, count() AS cohort_size
    FROM
    (
        SELECT user_id, min(toMonday(toDate(coded_at + utc_offset * 60))) AS cohort
        FROM pulses
        GROUP BY user_id
    )
    GROUP BY cohort
) USING cohort
ORDER BY cohort, weeks_later
