{#- Shared shape of both Kafka sources: the record value is read as raw text, not with the 'json'
    format, so that a record that is not JSON (or lacks a usable timestamp) reaches the dead-letter
    path instead of failing the job on every restart. Parsing happens in code/process/parse_*.sql.

    The rowtime must never be NULL (the watermark assigner fails on NULL) and must not let one bad
    record drag event time forward: an unusable or far-future datetime_occured becomes the epoch,
    which is always late and therefore never advances the watermark. Such records are
    dead-lettered by the parse step with the same rule. -#}
{% macro kafka_raw_source(table, topic) -%}
CREATE TABLE {{ table }} (
    payload STRING,
    kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
    kafka_partition INT METADATA FROM 'partition' VIRTUAL,
    kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
    kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
    proc_time AS PROCTIME(),
    event_time AS COALESCE(
        CASE
            WHEN {{ occurred_at('payload') }}
                 <= CAST(kafka_timestamp AS TIMESTAMP(3)) + {{ cfg.max_future_skew_seconds | sql_interval }}
            THEN {{ occurred_at('payload') }}
        END,
        TIMESTAMP '1970-01-01 00:00:00.000'),
    WATERMARK FOR event_time AS event_time - {{ cfg.out_of_orderness_seconds | sql_interval }}
) WITH (
    'connector' = 'kafka',
    'topic' = {{ topic | sql_string }},
    'properties.bootstrap.servers' = {{ cfg.kafka_bootstrap_servers | sql_string }},
    'properties.group.id' = {{ cfg.consumer_group_id | sql_string }},
    'properties.auto.offset.reset' = 'earliest',
    -- A missing topic is an error to see, not something to create with the broker's defaults.
    'properties.allow.auto.create.topics' = 'false',
    'scan.startup.mode' = {{ cfg.scan_startup_mode | sql_string }},
    'scan.watermark.idle-timeout' = '{{ cfg.source_idle_timeout_seconds }} s',
    'format' = 'raw',
    'raw.charset' = 'UTF-8'
)
{%- endmacro %}

{#- datetime_occured as TIMESTAMP(3), NULL when missing or not of the form YYYY-MM-DD HH:MM:SS[.fff] -#}
{% macro occurred_at(payload) -%}
JSON_TIMESTAMP({{ payload }}, 'datetime_occured')
{%- endmacro %}
