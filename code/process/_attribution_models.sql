{#- The attribution models: each macro reads click_candidates (process/attribute_checkouts.sql)
    and ends in an INSERT into its sink. To add a model: a macro here, its sink table in
    sink/*.sql and postgres/init.sql, and its name in attribution/config.py ATTRIBUTION_MODELS. #}

{#- The view each model's rows come from (the latency histogram observes the first model's). #}
{% set result_view = {'first_click': 'first_click', 'last_click': 'last_click', 'linear': 'linear_touches'} %}

{#- One click per checkout: the best candidate in `order` (the NULL-click row only if there is no
    click). A checkout delivered twice becomes one. State per checkout, expiring after
    ATTRIBUTION_STATE_TTL_SECONDS. Upserted by checkout_id: a better click that arrives out of
    order replaces the attribution written a moment before. #}
{% macro one_click(view, sink_name, order) -%}
CREATE TEMPORARY VIEW {{ view }} AS
SELECT checkout_id, user_id, product_id, details, click_id, checkout_time, click_time
FROM (
    SELECT
        *,
        ROW_NUMBER() OVER (
            PARTITION BY checkout_id
            ORDER BY click_time {{ order }} NULLS LAST, click_id {{ order }} NULLS LAST
        ) AS click_rank
    FROM click_candidates
)
WHERE click_rank = 1;

INSERT INTO {{ sink(sink_name) }}
SELECT
    f.checkout_id, f.user_id, f.details.user_name, f.click_id, f.product_id,
    f.details.payment_method, f.details.total_amount, f.details.shipping_address,
    f.details.billing_address, f.details.user_agent, f.details.ip_address,
    f.checkout_time, f.click_time
FROM {{ view }} AS f;
{%- endmacro %}

{#- first_click: the earliest qualifying click (ties: the smallest click_id). #}
{% macro first_click() -%}
{{ one_click('first_click', 'attributed_checkouts', 'ASC') }}
{%- endmacro %}

{#- last_click: the latest qualifying click (ties: the largest click_id). #}
{% macro last_click() -%}
{{ one_click('last_click', 'attributed_checkouts_last_click', 'DESC') }}
{%- endmacro %}

{#- linear: every qualifying click gets total_amount / touches. #}
{% macro linear() -%}
-- Each qualifying click once per checkout (a checkout or a click delivered twice repeats a
-- candidate), at its earliest time.
CREATE TEMPORARY VIEW checkout_click_touches AS
SELECT
    checkout_id, click_id, MIN(click_time) AS click_time, MAX(product_id) AS product_id,
    MAX(checkout_time) AS checkout_time, MAX(details.total_amount) AS total_amount
FROM click_candidates
WHERE click_id IS NOT NULL
GROUP BY checkout_id, click_id;

-- How many clicks share the checkout's credit. Counted from the candidates themselves, so that
-- a repeated candidate never takes the count down and back up (a count over the step above would).
CREATE TEMPORARY VIEW checkout_touch_counts AS
SELECT checkout_id, CAST(COUNT(DISTINCT click_id) AS INT) AS touches
FROM click_candidates
WHERE click_id IS NOT NULL
GROUP BY checkout_id;

-- One row per touch with its equal share; a checkout without a qualifying click has none. A
-- click that arrives out of order raises the count, and the join re-emits every touch of the
-- checkout with the new share: as updates (both inputs are keyed by checkout_id), never as a
-- delete and an insert, so the JDBC sink writes upserts only.
CREATE TEMPORARY VIEW linear_touches AS
SELECT
    t.checkout_id, t.click_id, t.click_time, t.total_amount / n.touches AS credit, n.touches,
    t.product_id, t.checkout_time
FROM checkout_click_touches AS t
JOIN checkout_touch_counts AS n ON n.checkout_id = t.checkout_id;

INSERT INTO {{ sink('attribution_touches') }}
SELECT checkout_id, click_id, click_time, credit, touches, product_id, checkout_time
FROM linear_touches;
{%- endmacro %}
