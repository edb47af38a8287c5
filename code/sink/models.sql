{% from "sink/_jdbc.sql" import jdbc_options, sink_options with context %}
{#- Every model's sink (attribution/models.py), named after the table it writes. #}

{#- one_click: one row per checkout_id, upserted (INSERT ... ON CONFLICT (checkout_id) DO UPDATE). #}
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

{#- touches: each qualifying click of a checkout, upserted by (checkout_id, click_id, click_time).
    The model's view (postgres/init.sql) adds each touch's credit. #}
{% macro touches_table(name, table) -%}
CREATE TABLE {{ name }} (
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
    {{ jdbc_options(table) }},
    {{ sink_options() }}
)
{%- endmacro %}

{% for model in registry.values() -%}
-- {{ model.name }}
{% if model.shape == 'one_click' -%}
{{ one_click_table(model.written_table, cfg.model_written_table(model.name)) }}
{%- else -%}
{{ touches_table(model.written_table, cfg.model_written_table(model.name)) }}
{%- endif %};
{% endfor %}
