-- Machines per user: every user's machines, how many are active, and how many sent XP in a period.
-- Deleted users and machines are left out; users without machines show 0.
-- @param since Date = 1970-01-01 first local day for coding_machines
-- @param until Date = 2105-12-31 last local day for coding_machines (inclusive)
SELECT
    username,
    private,
    machines,
    active_machines,
    coding_machines
FROM
(
    SELECT user_id, username, private, machines, active_machines
    FROM
    (
        SELECT user_id, username, private FROM users FINAL WHERE deleted = 0
    )
    ANY LEFT JOIN
    (
        SELECT user_id, count() AS machines, sum(active) AS active_machines
        FROM machines FINAL
        WHERE deleted = 0
        GROUP BY user_id
    ) USING user_id
)
ANY LEFT JOIN
(
    SELECT user_id, uniqExact(machine_id) AS coding_machines
    FROM pulses
    WHERE toDate(coded_at + utc_offset * 60) BETWEEN {since} AND {until}
    GROUP BY user_id
) USING user_id
ORDER BY machines DESC, username
