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
INSERT INTO attributed_checkouts
SELECT
    checkout_id, user_id, user_name, click_id, product_id, payment_method, total_amount,
    shipping_address, billing_address, user_agent, ip_address, checkout_time, click_time
FROM (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY checkout_id
            ORDER BY click_time ASC NULLS LAST, click_id ASC NULLS LAST
        ) AS click_rank
    FROM (
        SELECT
            co.checkout_id,
            co.user_id,
            u.username AS user_name,
            cl.click_id,
            co.product_id,
            co.payment_method,
            co.total_amount,
            co.shipping_address,
            co.billing_address,
            co.user_agent,
            co.ip_address,
            -- Plain timestamps: the join keeps both rowtime attributes, a sink accepts one.
            CAST(co.event_time AS TIMESTAMP(3)) AS checkout_time,
            CAST(cl.event_time AS TIMESTAMP(3)) AS click_time
        FROM checkouts_checked AS co
        LEFT JOIN users FOR SYSTEM_TIME AS OF co.proc_time AS u
            ON co.user_id = u.id
        LEFT JOIN (SELECT * FROM clicks_checked WHERE reject_reason IS NULL) AS cl
            ON cl.user_id = co.user_id
            AND cl.product_id = co.product_id
            AND cl.event_time BETWEEN co.event_time - {{ cfg.attribution_window_seconds | sql_interval }}
                                  AND co.event_time
        WHERE co.reject_reason IS NULL
    )
)
WHERE click_rank = 1
