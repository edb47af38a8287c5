{#- The rowtime of a raw event table (one with `payload` and `kafka_timestamp` columns), shared by
    the Kafka sources (source/_kafka_raw.sql), the validation that dead-letters what it cannot use
    (process/_validation.sql) and the unit tests' bounded sources. -#}

{#- datetime_occured as TIMESTAMP(3), NULL when missing or not of the form YYYY-MM-DD HH:MM:SS[.fff]. -#}
{% macro occurred_at() -%}
JSON_TIMESTAMP(payload, 'datetime_occured')
{%- endmacro %}

{#- The rowtime of a record whose datetime_occured is unusable (invalid, too far ahead, or not
    after this time itself): always late, so it never advances the watermark. -#}
{% macro unusable_time() -%}
TIMESTAMP '1970-01-01 00:00:00.000'
{%- endmacro %}

{#- The latest datetime_occured a record may carry: MAX_FUTURE_SKEW_SECONDS past its Kafka
    timestamp, and past the job's own clock, since a producer with a wrong clock stamps both. -#}
{% macro latest_plausible_time() -%}
CAST(LEAST(kafka_timestamp, CURRENT_TIMESTAMP) AS TIMESTAMP(3)) + {{ cfg.max_future_skew_seconds | sql_interval }}
{%- endmacro %}

{#- The time columns of a raw event table. The rowtime must never be NULL (the watermark assigner
    fails on NULL) and must not let one bad record drag event time forward: an unusable
    datetime_occured gives unusable_time(). Such records are dead-lettered by the parse step. -#}
{% macro event_time_columns() -%}
    proc_time AS PROCTIME(),
    event_time AS COALESCE(
        CASE
            WHEN {{ occurred_at() }} > {{ unusable_time() }}
                 AND {{ occurred_at() }} <= {{ latest_plausible_time() }}
            THEN {{ occurred_at() }}
        END,
        {{ unusable_time() }}),
    WATERMARK FOR event_time AS event_time - {{ cfg.out_of_orderness_seconds | sql_interval }}
{%- endmacro %}
