{% from "source/_kafka_raw.sql" import read_window with context %}
{% from "process/_validation.sql" import amount_field, field, int_field, parsed_payload, reject_reason, text with context %}
-- Checkouts with typed fields and, for unusable records, the reason they are rejected (NULL if usable).
CREATE TEMPORARY VIEW checkouts_checked AS
SELECT
    {{ text('checkout_id') }} AS checkout_id,
    {{ int_field('user_id') }} AS user_id,
    {{ text('product_id') }} AS product_id,
    {{ field('payment_method') }} AS payment_method,
    {{ amount_field('total_amount') }} AS total_amount,
    {{ field('shipping_address') }} AS shipping_address,
    {{ field('billing_address') }} AS billing_address,
    {{ field('user_agent') }} AS user_agent,
    {{ field('ip_address') }} AS ip_address,
    event_time,
    proc_time,
    {{ reject_reason('checkout_id', amount='total_amount') | indent(4) }} AS reject_reason,
    payload, {{ field('payload_chars') }} AS payload_chars,
    kafka_topic, kafka_partition, kafka_offset, kafka_timestamp
FROM {{ source('checkouts') }}, {{ parsed_payload(
    'checkout_id',
    text_fields=['payment_method', 'shipping_address', 'billing_address', 'user_agent', 'ip_address'],
    amount_fields=['total_amount'],
) }}{{ read_window() }}
