{#- time_decay: a click's weight halves every TIME_DECAY_HALF_LIFE_SECONDS before the checkout,
    2 ^ -((checkout_time - click_time) / half life), and the weights of a checkout's clicks are
    normalised to its amount. Credits in cents (credit_in_cents). Included by init.sql for the
    model; `make up` applies a new half life. #}
CREATE OR REPLACE VIEW {{ table }} AS
WITH {{ ordered_touches(written) }}, weighted AS (
    SELECT *,
           power(2::numeric, -(EXTRACT(EPOCH FROM checkout_time - click_time) / {{ cfg.time_decay_half_life_seconds }}))
               AS weight
    FROM ordered
), {{ credit_in_cents('weighted') }};
