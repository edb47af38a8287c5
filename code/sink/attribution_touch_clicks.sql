{% from "sink/_jdbc.sql" import jdbc_options, sink_options with context %}
-- The linear model: each qualifying click of a checkout, upserted by (checkout_id, click_id,
-- click_time). The view LINEAR_SINK_TABLE adds touches and credit (postgres/init.sql).
CREATE TABLE attribution_touch_clicks (
    checkout_id STRING,
    click_id STRING,
    click_time TIMESTAMP(3),
    total_amount DECIMAL(10, 2),
    product_id STRING,
    checkout_time TIMESTAMP(3),
    -- Which delivery of the checkout the row is of (the first one wins).
    delivered_at TIMESTAMP(3),
    delivery_partition INT,
    delivery_offset BIGINT,
    PRIMARY KEY (checkout_id, click_id, click_time) NOT ENFORCED
) WITH (
    {{ jdbc_options(cfg.linear_clicks_table) }},
    {{ sink_options() }}
)
