-- Users who switched main language: a row each time a user's main language changed.
-- A user's main language in a month (local days) is the one they wrote most XP in
-- (ties: the alphabetically last). Each month with XP is compared to the user's
-- previous month with XP, so a gap of idle months does not hide a switch.
-- @param since Date = 1970-01-01 first local day counted
-- @param until Date = 2105-12-31 last local day counted (inclusive)
SELECT
    username,
    month,
    previous_language,
    main_language
FROM
(
    SELECT user_id, month, previous_language, main_language
    FROM
    (
        SELECT
            user_id,
            arraySort(groupArray(month)) AS months,
            arraySort((main, m) -> m, groupArray(main), groupArray(month)) AS mains
        FROM
        (
            SELECT user_id, month, argMax(language, (xp, language)) AS main
            FROM
            (
                SELECT
                    user_id,
                    toStartOfMonth(toDate(coded_at + utc_offset * 60)) AS month,
                    language,
                    sum(xp) AS xp
                FROM pulses
                WHERE toDate(coded_at + utc_offset * 60) BETWEEN {since} AND {until}
                GROUP BY user_id, month, language
            )
            GROUP BY user_id, month
        )
        GROUP BY user_id
    )
    ARRAY JOIN
        months AS month,
        mains AS main_language,
        arrayPushFront(arrayPopBack(mains), '') AS previous_language
    WHERE previous_language != '' AND previous_language != main_language
)
ANY INNER JOIN
(
    SELECT user_id, username FROM users FINAL WHERE deleted = 0
) USING user_id
ORDER BY username, month
