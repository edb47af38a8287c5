{#- The attribution models of attribution/models.py, a macro each, named after the model: it reads
    click_candidates (process/attribute_checkouts.sql), defines the view named after the model and
    ends in an INSERT into sink(model.name). To add a model: docs/models.md. #}

{#- A checkout_id delivered more than once is one checkout: its first delivery (the earliest Kafka
    timestamp, then partition and offset: the same order on every replay) wins every column, and
    only its clicks count. The result tables keep that order once this state has expired. #}
{% set first_delivery = 'details.delivered_at, details.delivery_partition, details.delivery_offset' %}

{#- One click per checkout: the best candidate in `order` (the NULL-click row only if there is no
    click) of its first delivery. State per checkout, expiring after
    ATTRIBUTION_STATE_TTL_SECONDS. Upserted by checkout_id: a better click that arrives out of
    order replaces the attribution written a moment before. #}
{% macro one_click(model) -%}
CREATE TEMPORARY VIEW {{ model.name }} AS
SELECT checkout_id, user_id, product_id, details, click_id, checkout_time, click_time
FROM (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY checkout_id
            ORDER BY {{ first_delivery }}, click_time {{ model.order }} NULLS LAST, click_id {{ model.order }} NULLS LAST
        ) AS click_rank
    FROM click_candidates
)
WHERE click_rank = 1;

INSERT INTO {{ sink(model.name) }}
SELECT
    f.checkout_id, f.user_id, f.details.user_name, f.click_id, f.product_id,
    f.details.payment_method, f.details.total_amount, f.details.shipping_address,
    f.details.billing_address, f.details.user_agent, f.details.ip_address,
    f.checkout_time, f.click_time,
    f.details.delivered_at, f.details.delivery_partition, f.details.delivery_offset
FROM {{ model.name }} AS f;
{%- endmacro %}

{#- first_click: the earliest qualifying click (ties: the smallest click_id). #}
{% macro first_click() -%}
{{ one_click(registry.first_click) }}
{%- endmacro %}

{#- last_click: the latest qualifying click (ties: the largest click_id). #}
{% macro last_click() -%}
{{ one_click(registry.last_click) }}
{%- endmacro %}

{#- A touches model: the job writes each qualifying click of a checkout, and the model's view in
    Postgres (postgres/models/<model>.sql) gives each row its credit when it is read. So a click
    that arrives out of order changes every row of its checkout at once, nothing is left stale,
    and a checkout's n clicks cost n writes, not one rewrite of every row per click. Upserted by
    (checkout_id, click_id, click_time): a checkout or a click delivered twice writes its row
    again; a click at two times is two rows, of which the view takes the earliest. Each row names
    its checkout's delivery: the view reads the first delivery's rows only. #}
{% macro touches(model) -%}
CREATE TEMPORARY VIEW {{ model.name }} AS
SELECT
    checkout_id, click_id, click_time, details.total_amount AS total_amount, product_id, checkout_time,
    details.delivered_at AS delivered_at, details.delivery_partition AS delivery_partition,
    details.delivery_offset AS delivery_offset
FROM click_candidates
WHERE click_id IS NOT NULL;

INSERT INTO {{ sink(model.name) }}
SELECT
    checkout_id, click_id, click_time, total_amount, product_id, checkout_time,
    delivered_at, delivery_partition, delivery_offset
FROM {{ model.name }};
{%- endmacro %}

{#- linear: every qualifying click gets an equal share of total_amount. #}
{% macro linear() -%}
{{ touches(registry.linear) }}
{%- endmacro %}

{#- position_based: 40 % to the first click, 40 % to the last, 20 % shared by those between. #}
{% macro position_based() -%}
{{ touches(registry.position_based) }}
{%- endmacro %}

{#- time_decay: each click's weight halves every TIME_DECAY_HALF_LIFE_SECONDS before the checkout. #}
{% macro time_decay() -%}
{{ touches(registry.time_decay) }}
{%- endmacro %}
