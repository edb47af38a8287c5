{% from "process/_validation.sql" import common_reject_reason, field, parsed_payload, text with context %}
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
    payload, f.payload_chars, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp
FROM clicks_raw, {{ parsed_payload(['click_id', 'user_id', 'product_id', 'datetime_occured']) }}
