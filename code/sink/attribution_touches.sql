{% from "sink/_jdbc.sql" import jdbc_options, sink_options with context %}
-- The linear model: one row per checkout and qualifying click, upserted.
CREATE TABLE attribution_touches (
    checkout_id STRING,
    click_id STRING,
    click_time TIMESTAMP(3),
    credit DECIMAL(21, 13),
    touches INT,
    product_id STRING,
    checkout_time TIMESTAMP(3),
    PRIMARY KEY (checkout_id, click_id) NOT ENFORCED
) WITH (
    {{ jdbc_options(cfg.linear_sink_table) }},
    {{ sink_options() }}
)
