{% from "process/_validation.sql" import common_reject_reason, field, text with context %}
-- Clicks with typed fields and, for unusable records, the reason they are rejected.
CREATE TEMPORARY VIEW clicks_checked AS
SELECT
    {{ text('click_id') }} AS click_id,
    TRY_CAST({{ field('user_id') }} AS INT) AS user_id,
    {{ text('product_id') }} AS product_id,
    event_time,
    {{ common_reject_reason('click_id') }}
        ELSE CAST(NULL AS STRING)
    END AS reject_reason,
    payload, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp
FROM clicks_raw
