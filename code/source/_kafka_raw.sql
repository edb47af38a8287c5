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
    'scan.bounded.mode' = {{ cfg.scan_bounded_mode | sql_string }},
{%- if cfg.scan_bounded_mode == 'timestamp' %}
    'scan.bounded.timestamp-millis' = '{{ cfg.scan_bounded_millis }}',
{%- endif %}
    'scan.watermark.idle-timeout' = '{{ cfg.source_idle_timeout_seconds }} s',
    'format' = 'raw'
)
{%- endmacro %}
