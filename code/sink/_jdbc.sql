{#- Connection options shared by every JDBC table of the job. -#}
{% macro jdbc_options(table) -%}
    'connector' = 'jdbc',
    'url' = {{ cfg.jdbc_url | sql_string }},
    'table-name' = {{ table | sql_string }},
    'username' = {{ cfg.postgres_user | sql_string }},
    'password' = {{ cfg.postgres_password | sql_string }},
    -- How long a retry waits to learn that its connection is dead (the default is 60 s).
    'connection.max-retry-timeout' = '10 s'
{%- endmacro %}

{#- Batching and retries of the upsert sinks. -#}
{% macro sink_options() -%}
    'sink.buffer-flush.max-rows' = '{{ cfg.sink_flush_rows }}',
    'sink.buffer-flush.interval' = '{{ cfg.sink_flush_interval_ms }} ms',
    'sink.max-retries' = '{{ cfg.sink_max_retries }}'
{%- endmacro %}
