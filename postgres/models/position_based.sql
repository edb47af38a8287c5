{#- position_based (Snowplow's definition): 40 % of the amount to the first click, 40 % to the
    last and 20 % shared equally by the clicks between; one click gets it all, two share it
    50/50. Credits in cents (credit_in_cents). Included by init.sql for the model. #}
CREATE OR REPLACE VIEW {{ table }} AS
WITH {{ ordered_touches(written) }}, weighted AS (
    -- In whole numbers, so that equal shares are equal to the last digit: 2 (n - 2) for the first
    -- and the last click and 1 for each between is 40 %, 40 % and 20 % / (n - 2).
    SELECT *, CASE
        WHEN touches <= 2 OR (position > 1 AND position < touches) THEN 1
        ELSE 2 * (touches - 2)
    END AS weight
    FROM ordered
), {{ credit_in_cents('weighted') }};
