{% from "sink/_jdbc.sql" import jdbc_options, sink_options with context %}
{#- A model that attributes each checkout to one click: one row per checkout_id, upserted
    (INSERT ... ON CONFLICT (checkout_id) DO UPDATE). #}
{% macro one_click_table(name, table) -%}
CREATE TABLE {{ name }} (
    checkout_id STRING,
    user_id INT,
    user_name STRING,
    click_id STRING,
    product_id STRING,
    payment_method STRING,
    total_amount DECIMAL(10, 2),
    shipping_address STRING,
    billing_address STRING,
    user_agent STRING,
    ip_address STRING,
    checkout_time TIMESTAMP(3),
    click_time TIMESTAMP(3),
    -- Which delivery of the checkout the row is of (the first one wins).
    delivered_at TIMESTAMP(3),
    delivery_partition INT,
    delivery_offset BIGINT,
    PRIMARY KEY (checkout_id) NOT ENFORCED
) WITH (
    {{ jdbc_options(table) }},
    {{ sink_options() }}
)
{%- endmacro %}
-- first_click
{{ one_click_table('attributed_checkouts', cfg.sink_table) }};

-- last_click
{{ one_click_table('attributed_checkouts_last_click', cfg.last_click_sink_table) }}
