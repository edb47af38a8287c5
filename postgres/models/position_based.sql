{#- position_based (Snowplow's definition): 40 % of the amount to the first click, 40 % to the
    last and 20 % shared equally by the clicks between; one click gets it all, two share it
    50/50. Credits in cents (credit_in_cents). Included by init.sql for the model. #}
CREATE OR REPLACE VIEW {{ table }} AS
WITH {{ ordered_touches(written) }}, weighted AS (
    SELECT *, CASE
        WHEN touches = 1 THEN 1.0
        WHEN touches = 2 THEN 0.5
        WHEN position = 1 OR position = touches THEN 0.4
        ELSE 0.2 / (touches - 2)
    END AS weight
    FROM ordered
), {{ credit_in_cents('weighted') }};
