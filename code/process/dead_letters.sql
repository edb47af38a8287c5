{% from "source/_event_time.sql" import unusable_time %}
-- Every rejected record, with where it came from and why. Keyed by (topic, partition, offset,
-- Kafka timestamp): a replay after recovery rewrites the same rows, and a new broker whose
-- offsets start at 0 again adds rows instead of overwriting them.
CREATE TEMPORARY VIEW rejected_records AS
SELECT kafka_topic, kafka_partition, kafka_offset, reject_reason, payload, payload_chars, kafka_timestamp
FROM clicks_checked
WHERE reject_reason IS NOT NULL
UNION ALL
SELECT kafka_topic, kafka_partition, kafka_offset, reject_reason, payload, payload_chars, kafka_timestamp
FROM checkouts_checked
WHERE reject_reason IS NOT NULL;

INSERT INTO {{ sink('dead_letters') }}
SELECT
    kafka_topic AS source_topic,
    kafka_partition AS source_partition,
    kafka_offset AS source_offset,
    reject_reason AS reason,
    -- Stored for inspection and replay: as UTF-8 text, without NUL characters (Postgres text
    -- cannot hold them), capped so that one oversized record cannot bloat the table.
    SUBSTRING(REPLACE(COALESCE(CAST(payload AS STRING), ''), CHR(0), ''), 1, {{ cfg.max_payload_chars }}) AS payload,
    payload_chars,
    -- A producer may stamp any long; Postgres stores years 4713 BC to 294276 (a key column: not NULL).
    LEAST(
        GREATEST(CAST(kafka_timestamp AS TIMESTAMP(3)), {{ unusable_time() }}),
        TIMESTAMP '9999-12-31 23:59:59.999') AS kafka_timestamp
FROM rejected_records
