-- XP per language per week: one row per week (its Monday) and language.
-- Weeks start on Monday, local days. Within a week, most XP first.
-- @param since Date = 1970-01-01 first local day counted
-- @param until Date = 2105-12-31 last local day counted (inclusive)
-- @param language String = '' only this language ('' for all)
SELECT
    toMonday(toDate(coded_at + utc_offset * 60)) AS week,
    language,
    sum(xp) AS xp
FROM pulses
WHERE toDate(coded_at + utc_offset * 60) BETWEEN {since} AND {until}
    AND ({language} = '' OR language = {language})
GROUP BY week, language
ORDER BY week, xp DESC, language
