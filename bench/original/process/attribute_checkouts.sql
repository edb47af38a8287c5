-- The original's code/process/attribute_checkouts.sql (Flink 1.17), ported to Flink 2.0 for the
-- benchmark's baseline (bench/original/README.md). Two changes: ROW_NUMBER per checkout_id (the
-- original ranked per (user_id, product_id)), and the checkout's rowtime cast to a plain
-- TIMESTAMP(3) (the interval join keeps both rowtime attributes; a sink accepts one).
INSERT INTO original_attributed_checkouts
SELECT
    checkout_id,
    user_name,
    click_id,
    product_id,
    payment_method,
    total_amount,
    shipping_address,
    billing_address,
    user_agent,
    ip_address,
    checkout_time,
    click_time
FROM
    (
        SELECT
            co.checkout_id,
            u.username AS user_name,
            cl.click_id,
            co.product_id,
            co.payment_method,
            co.total_amount,
            co.shipping_address,
            co.billing_address,
            co.user_agent,
            co.ip_address,
            CAST(co.datetime_occured AS TIMESTAMP(3)) AS checkout_time,
            cl.datetime_occured AS click_time,
            ROW_NUMBER() OVER (
                PARTITION BY co.checkout_id
                ORDER BY
                    cl.datetime_occured
            ) AS rn
        FROM
            original_checkouts AS co
            JOIN original_users FOR SYSTEM_TIME AS OF co.processing_time AS u ON co.user_id = u.id
            LEFT JOIN original_clicks AS cl ON co.user_id = cl.user_id
            AND co.product_id = cl.product_id
            AND co.datetime_occured BETWEEN cl.datetime_occured
            AND cl.datetime_occured + INTERVAL '1' HOUR
    )
WHERE
    rn = 1;
