{% from "source/_event_time.sql" import event_time_columns with context %}
{#- Shared shape of both Kafka sources: the record value is read as raw bytes, not with the 'json'
    format, so that a record that is not JSON (or lacks a usable timestamp) reaches the dead-letter
    path instead of failing the job on every restart. BYTES, not STRING: the planner copies every
    STRING column each Calc reads, and the payload is the largest one. Parsing happens in
    code/process/parse_*.sql; the rowtime is defined in source/_event_time.sql. -#}
{% macro kafka_raw_source(table, topic, startup_offsets) -%}
CREATE TABLE {{ table }} (
    payload BYTES,
    kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
    kafka_partition INT METADATA FROM 'partition' VIRTUAL,
    kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
    kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
{{ event_time_columns() }}
) WITH (
    'connector' = 'kafka',
    'topic' = {{ topic | sql_string }},
    'properties.bootstrap.servers' = {{ cfg.kafka_bootstrap_servers | sql_string }},
    'properties.group.id' = {{ cfg.consumer_group_id | sql_string }},
    -- Only read with group-offsets and no committed offset: then from the start, losing nothing.
    'properties.auto.offset.reset' = '{{ "latest" if cfg.scan_startup_mode == "latest-offset" else "earliest" }}',
    -- A missing topic is an error to see, not something to create with the broker's defaults.
    'properties.allow.auto.create.topics' = 'false',
    'scan.startup.mode' = {{ cfg.scan_startup_mode | sql_string }},
{%- if cfg.scan_startup_mode == 'timestamp' %}
    'scan.startup.timestamp-millis' = '{{ cfg.scan_startup_millis }}',
{%- elif cfg.scan_startup_mode == 'specific-offsets' %}
    'scan.startup.specific-offsets' = {{ startup_offsets | sql_string }},
{%- endif %}
    -- KAFKA_SCAN_BOUNDED_MODE=timestamp reads to the end of the topics as they are at the start,
    -- and the parse views leave out what is stamped later (read_window): a broker that cannot look
    -- offsets up by time, as the embedded one, would otherwise stop at the first offset.
    'scan.bounded.mode' = '{{ "latest-offset" if cfg.scan_bounded_mode == "timestamp" else cfg.scan_bounded_mode }}',
    'scan.watermark.idle-timeout' = '{{ cfg.source_idle_timeout_seconds }} s',
    'format' = 'raw'
)
{%- endmacro %}


{#- The records a job reads by their Kafka timestamp: from KAFKA_SCAN_STARTUP_TIMESTAMP (with
    KAFKA_SCAN_STARTUP_MODE=timestamp) and before KAFKA_SCAN_BOUNDED_TIMESTAMP (with
    KAFKA_SCAN_BOUNDED_MODE=timestamp), whatever offsets the broker gave the source; nothing
    otherwise. The others are outside the job's period: not read, not rejected. -#}
{% macro read_window() -%}
{%- set since = cfg.scan_startup_mode == 'timestamp' %}
{%- set until = cfg.scan_bounded_mode == 'timestamp' %}
{%- if since or until %}
WHERE
{%- if since %} kafka_timestamp >= TO_TIMESTAMP_LTZ({{ cfg.scan_startup_millis }}, 3){% endif %}
{%- if since and until %} AND{% endif %}
{%- if until %} kafka_timestamp < TO_TIMESTAMP_LTZ({{ cfg.scan_bounded_millis }}, 3){% endif %}
{%- endif %}
{%- endmacro %}
