{% from "process/_validation.sql" import common_reject_reason, text with context %}
-- Checkouts with typed fields and, for unusable records, the reason they are rejected.
CREATE TEMPORARY VIEW checkouts_checked AS
SELECT
    {{ text('checkout_id') }} AS checkout_id,
    TRY_CAST(JSON_VALUE(payload, '$.user_id') AS INT) AS user_id,
    {{ text('product_id') }} AS product_id,
    JSON_VALUE(payload, '$.payment_method') AS payment_method,
    TRY_CAST(JSON_VALUE(payload, '$.total_amount') AS DECIMAL(10, 2)) AS total_amount,
    JSON_VALUE(payload, '$.shipping_address') AS shipping_address,
    JSON_VALUE(payload, '$.billing_address') AS billing_address,
    JSON_VALUE(payload, '$.user_agent') AS user_agent,
    JSON_VALUE(payload, '$.ip_address') AS ip_address,
    event_time,
    proc_time,
    {{ common_reject_reason('checkout_id') }}
        -- DECIMAL(10, 2) in the sink: an amount that does not fit would fail every write.
        WHEN JSON_VALUE(payload, '$.total_amount') IS NOT NULL
             AND TRY_CAST(JSON_VALUE(payload, '$.total_amount') AS DECIMAL(10, 2)) IS NULL
            THEN 'invalid_total_amount'
        WHEN TRY_CAST(JSON_VALUE(payload, '$.total_amount') AS DECIMAL(10, 2)) < 0
            THEN 'negative_total_amount'
        ELSE CAST(NULL AS STRING)
    END AS reject_reason,
    payload, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp
FROM checkouts_raw
