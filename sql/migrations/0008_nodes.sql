-- The nodes that share the store, each with the time before which every
-- block it took in is in ClickHouse (its shipper's insertion watermark).
-- The builder reads the lowest of them, so an incremental rollup never
-- passes a block another node still has in flight (ClickHouse or a shard
-- was down). One row per report; the newest version is the node's state.

CREATE TABLE IF NOT EXISTS nodes
(
    node_id UInt64,
    settled_before DateTime,
    reported_at DateTime,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY node_id;
