{% from "source/_kafka_raw.sql" import read_window with context %}
{% from "process/_validation.sql" import field, int_field, parsed_payload, reject_reason, text with context %}
-- Clicks with typed fields and, for unusable records, the reason they are rejected (NULL if usable).
CREATE TEMPORARY VIEW clicks_checked AS
SELECT
    {{ text('click_id') }} AS click_id,
    {{ int_field('user_id') }} AS user_id,
    {{ text('product_id') }} AS product_id,
    event_time,
    {{ reject_reason('click_id') | indent(4) }} AS reject_reason,
    payload, {{ field('payload_chars') }} AS payload_chars,
    kafka_topic, kafka_partition, kafka_offset, kafka_timestamp
FROM {{ source('clicks') }}, {{ parsed_payload('click_id') }}{{ read_window() }}
