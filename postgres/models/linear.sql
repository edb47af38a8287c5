{#- linear: each click of a checkout gets an equal share of its amount. Included by init.sql for
    the model (table: its view, written: the table the job writes). touches: the checkout's
    clicks; credit: total_amount / touches, as Flink would divide DECIMAL(10, 2) by INT
    (DECIMAL(21, 13), half up). #}
CREATE OR REPLACE VIEW {{ table }} AS
SELECT
    checkout_id, click_id, click_time,
    round(total_amount::numeric(38, 30) / count(*) OVER checkout, 13)::numeric(21, 13) AS credit,
    (count(*) OVER checkout)::int AS touches,
    product_id, checkout_time, updated_at
FROM ({{ first_delivery_touches(written) }}) AS touch
WINDOW checkout AS (PARTITION BY checkout_id);
