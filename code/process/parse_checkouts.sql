{% from "process/_validation.sql" import common_reject_reason, field, parsed_payload, text with context %}
-- Checkouts with typed fields and, for unusable records, the reason they are rejected.
CREATE TEMPORARY VIEW checkouts_checked AS
SELECT
    {{ text('checkout_id') }} AS checkout_id,
    TRY_CAST({{ field('user_id') }} AS INT) AS user_id,
    {{ text('product_id') }} AS product_id,
    {{ field('payment_method') }} AS payment_method,
    TRY_CAST({{ field('total_amount') }} AS DECIMAL(10, 2)) AS total_amount,
    {{ field('shipping_address') }} AS shipping_address,
    {{ field('billing_address') }} AS billing_address,
    {{ field('user_agent') }} AS user_agent,
    {{ field('ip_address') }} AS ip_address,
    event_time,
    proc_time,
    {{ common_reject_reason('checkout_id') }}
        -- DECIMAL(10, 2) in the sink: an amount that does not fit would fail every write.
        WHEN {{ field('total_amount') }} IS NOT NULL
             AND TRY_CAST({{ field('total_amount') }} AS DECIMAL(10, 2)) IS NULL
            THEN 'invalid_total_amount'
        WHEN TRY_CAST({{ field('total_amount') }} AS DECIMAL(10, 2)) < 0
            THEN 'negative_total_amount'
        ELSE CAST(NULL AS STRING)
    END AS reject_reason,
    payload, f.payload_chars, kafka_topic, kafka_partition, kafka_offset, kafka_timestamp
FROM checkouts_raw, {{ parsed_payload([
    'checkout_id', 'user_id', 'product_id', 'payment_method', 'total_amount', 'shipping_address',
    'billing_address', 'user_agent', 'ip_address', 'datetime_occured',
]) }}
