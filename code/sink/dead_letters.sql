-- Rejected records; the row count of this sink is the job's malformed-record counter.
CREATE TABLE dead_letters (
    source_topic STRING,
    source_partition INT,
    source_offset BIGINT,
    reason STRING,
    payload STRING,
    payload_chars INT,
    kafka_timestamp TIMESTAMP(3),
    PRIMARY KEY (source_topic, source_partition, source_offset) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = {{ cfg.jdbc_url | sql_string }},
    'table-name' = {{ cfg.dead_letter_table | sql_string }},
    'username' = {{ cfg.postgres_user | sql_string }},
    'password' = {{ cfg.postgres_password | sql_string }},
    'sink.buffer-flush.max-rows' = '{{ cfg.sink_flush_rows }}',
    'sink.buffer-flush.interval' = '{{ cfg.sink_flush_interval_ms }} ms',
    'sink.max-retries' = '{{ cfg.sink_max_retries }}'
)
