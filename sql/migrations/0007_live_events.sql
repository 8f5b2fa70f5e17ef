-- The live relay: every pulse a node with the relay on accepted for a
-- public user, so the other nodes sharing this store show it on their live
-- feed (ingest/src/relay/). Each node writes its own events in small
-- batches and reads the others' since a time a few seconds back; rows
-- older than ten minutes are deleted by the nodes' housekeeping.
--
-- node_id is the random id of the process that accepted the pulse, seq its
-- event number there (the pair names an event); event_ms is that node's
-- clock when it took the event, unix milliseconds, the primary key, so
-- "since T" reads one range. Partitioned by UTC day: old rows sit in old
-- parts. languages and xps are the pulse's items, in order.

CREATE TABLE IF NOT EXISTS live_events
(
    node_id UInt64,
    event_ms UInt64,
    seq UInt64,
    user_id UInt64,
    username String,
    machine String,
    coded_at DateTime,
    utc_offset Int16,
    languages Array(String),
    xps Array(UInt32)
)
ENGINE = MergeTree
PARTITION BY intDiv(event_ms, 86400000)
ORDER BY (event_ms, node_id);
