-- First-click attribution: for every checkout, the earliest click by the same user on the same
-- product with  checkout_time - window <= click_time <= checkout_time  (both ends inclusive).
--
-- 1. LEFT lookup join with users: an unknown user gives user_name NULL, never a dropped checkout.
-- 2. LEFT interval join with clicks: one row per qualifying click, or one NULL-padded row once
--    event time (the watermark) has passed the checkout with no click. A checkout that arrives
--    after the watermark is joined with the clicks still in state and emitted at once.
--    Click state is kept for one window past the watermark, so it is bounded by time.
-- 3. Top-1 per checkout_id: the earliest click (ties: smallest click_id), a NULL-padded row only
--    when nothing else exists. This also collapses a checkout delivered twice into one row.
--    Its state is per checkout and expires after ATTRIBUTION_STATE_TTL_SECONDS.
-- The sink upserts on checkout_id, so an earlier click that arrives out of order replaces the
-- attribution written a moment before.
--
-- The checkout's descriptive columns travel as one nested row, `details`: the join emits a row
-- per (checkout, qualifying click) pair and every pair is copied and shuffled to the ranking, so
-- one field costs much less than seven (docs/benchmarks.md).
{#- `id`, counting the event as late when event time has already passed it: a late checkout is
    attributed only to clicks still in state, a late click only to checkouts still in state. -#}
{% macro counted_arrival(id, event_time, topic) -%}
CASE WHEN {{ event_time }} < CURRENT_WATERMARK({{ event_time }})
    THEN COUNTED({{ id }}, 'late_events', 'topic', '{{ topic }}')
    ELSE {{ id }}
END
{%- endmacro %}
INSERT INTO attributed_checkouts
SELECT
    checkout_id,
    user_id,
    ranked.details.user_name,
    click_id,
    product_id,
    ranked.details.payment_method,
    ranked.details.total_amount,
    ranked.details.shipping_address,
    ranked.details.billing_address,
    ranked.details.user_agent,
    ranked.details.ip_address,
    -- Metric only: datetime_occured to the row handed to the sink (which flushes within
    -- SINK_FLUSH_INTERVAL_MS); updates of a row are observed too.
    OBSERVED_LATENCY(checkout_time, {{ cfg.event_time_zone | sql_string }}, 'checkout_latency_ms') AS checkout_time,
    click_time
FROM (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY checkout_id
            ORDER BY click_time ASC NULLS LAST, click_id ASC NULLS LAST
        ) AS click_rank
    FROM (
        SELECT
            -- Counted once per checkout: a checkout with no qualifying click is NULL-padded
            -- exactly once, when event time passes it (attributed = checkouts - unattributed).
            CASE WHEN cl.click_id IS NULL
                THEN COUNTED(co.checkout_id, 'checkouts_unattributed', 'user', co.user_kind)
                ELSE co.checkout_id
            END AS checkout_id,
            co.user_id,
            cl.click_id,
            co.product_id,
            co.details,
            -- Plain timestamps: the join keeps both rowtime attributes, a sink accepts one.
            CAST(co.event_time AS TIMESTAMP(3)) AS checkout_time,
            CAST(cl.event_time AS TIMESTAMP(3)) AS click_time
        FROM (
            SELECT
                {{ counted_arrival("COUNTED(c.checkout_id, 'checkouts', 'user', IF(u.username IS NULL, 'unknown', 'known'))", 'c.event_time', 'checkouts') }}
                    AS checkout_id,
                c.user_id, c.product_id, c.event_time,
                CAST(
                    ROW(u.username, c.payment_method, c.total_amount, c.shipping_address,
                        c.billing_address, c.user_agent, c.ip_address)
                    AS ROW<user_name STRING, payment_method STRING, total_amount DECIMAL(10, 2),
                           shipping_address STRING, billing_address STRING, user_agent STRING,
                           ip_address STRING>
                ) AS details,
                IF(u.username IS NULL, 'unknown', 'known') AS user_kind
            FROM checkouts_checked AS c
            LEFT JOIN users FOR SYSTEM_TIME AS OF c.proc_time AS u
                ON c.user_id = u.id
            WHERE c.reject_reason IS NULL
        ) AS co
        LEFT JOIN (
            SELECT {{ counted_arrival('click_id', 'event_time', 'clicks') }} AS click_id, user_id, product_id, event_time
            FROM clicks_checked
            WHERE reject_reason IS NULL
        ) AS cl
            ON cl.user_id = co.user_id
            AND cl.product_id = co.product_id
            AND cl.event_time BETWEEN co.event_time - {{ cfg.attribution_window_seconds | sql_interval }}
                                  AND co.event_time
    )
) AS ranked
WHERE click_rank = 1
