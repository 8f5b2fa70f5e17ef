-- Hour-of-day heat by language: XP per language and local hour (0-23).
-- share is the hour's part of the language's XP over the period (a heat map row sums to 1).
-- Hours without XP are absent.
-- @param since Date = 1970-01-01 first local day counted
-- @param until Date = 2105-12-31 last local day counted (inclusive)
-- @param language String = '' only this language ('' for all)
SELECT
    language,
    hour,
    xp,
    round(xp / language_xp, 4) AS share
FROM
(
    SELECT
        language,
        toHour(coded_at + utc_offset * 60) AS hour,
        sum(xp) AS xp
    FROM pulses
    WHERE toDate(coded_at + utc_offset * 60) BETWEEN {since} AND {until}
        AND ({language} = '' OR language = {language})
    GROUP BY language, hour
)
ANY INNER JOIN
(
    SELECT language, sum(xp) AS language_xp
    FROM pulses
    WHERE toDate(coded_at + utc_offset * 60) BETWEEN {since} AND {until}
        AND ({language} = '' OR language = {language})
    GROUP BY language
) USING language
ORDER BY language, hour
