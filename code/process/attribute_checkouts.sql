{% import "process/_attribution_models.sql" as models with context %}
-- Attribution: every valid checkout, with its user's name, attributed to the clicks by the same
-- user on the same product with
--     checkout_time - ATTRIBUTION_WINDOW_SECONDS <= click_time <= checkout_time   (both ends inclusive)
-- Named steps, each reading the one before; process/metrics.sql taps them. Steps 1-3 are shared,
-- and each model of ATTRIBUTION_MODELS adds its own (process/_attribution_models.sql), in the
-- order of attribution/models.py.

-- 1. A LEFT lookup join: an unknown user gives user_name NULL, never a dropped checkout. The
--    delivery columns (where the record was read) order the deliveries of a checkout_id: the
--    first one wins (process/_attribution_models.sql).
CREATE TEMPORARY VIEW checkouts_enriched AS
SELECT
    c.checkout_id, c.user_id, c.product_id, c.event_time, u.username AS user_name,
    c.payment_method, c.total_amount, c.shipping_address, c.billing_address, c.user_agent, c.ip_address,
    CAST(c.kafka_timestamp AS TIMESTAMP(3)) AS delivered_at, c.kafka_partition AS delivery_partition,
    c.kafka_offset AS delivery_offset
FROM checkouts_checked AS c
LEFT JOIN {{ source('users') }} FOR SYSTEM_TIME AS OF c.proc_time AS u
    ON u.id = c.user_id
WHERE c.reject_reason IS NULL;

-- 2. The descriptive columns as one nested row, `details`: the join copies a checkout once per
--    qualifying click and shuffles every copy to the ranking, and one field costs much less than seven.
CREATE TEMPORARY VIEW checkouts_compact AS
SELECT
    checkout_id, user_id, product_id, event_time,
    CAST(
        ROW(user_name, payment_method, total_amount, shipping_address, billing_address, user_agent, ip_address,
            delivered_at, delivery_partition, delivery_offset)
        AS ROW<user_name STRING, payment_method STRING, total_amount DECIMAL(10, 2),
               shipping_address STRING, billing_address STRING, user_agent STRING, ip_address STRING,
               delivered_at TIMESTAMP(3), delivery_partition INT, delivery_offset BIGINT>
    ) AS details
FROM checkouts_enriched;

-- 3. A LEFT interval join: one row per qualifying click, or one row with a NULL click once event
--    time has passed the checkout without one. A checkout behind the watermark is joined at once
--    with the clicks still in state. Click state lasts one window past the watermark.
CREATE TEMPORARY VIEW click_candidates AS
SELECT
    co.checkout_id, co.user_id, co.product_id, co.details, cl.click_id,
    -- Plain timestamps: the join keeps both rowtime attributes, a sink accepts one.
    CAST(co.event_time AS TIMESTAMP(3)) AS checkout_time,
    CAST(cl.event_time AS TIMESTAMP(3)) AS click_time
FROM checkouts_compact AS co
LEFT JOIN (
    SELECT click_id, user_id, product_id, event_time FROM clicks_checked WHERE reject_reason IS NULL
) AS cl
    ON cl.user_id = co.user_id
    AND cl.product_id = co.product_id
    AND cl.event_time BETWEEN co.event_time - {{ cfg.attribution_window_seconds | sql_interval }} AND co.event_time;
{% for model in cfg.models %}
{{ models[model]() }}
{% endfor %}
