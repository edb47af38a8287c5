{% from "sink/_jdbc.sql" import jdbc_options, sink_options with context %}
-- Rejected records; the row count of this sink is the job's malformed-record counter.
CREATE TABLE dead_letters (
    source_topic STRING,
    source_partition INT,
    source_offset BIGINT,
    reason STRING,
    payload STRING,
    payload_chars INT,
    kafka_timestamp TIMESTAMP(3),
    PRIMARY KEY (source_topic, source_partition, source_offset, kafka_timestamp) NOT ENFORCED
) WITH (
    {{ jdbc_options(cfg.dead_letter_table) }},
    {{ sink_options() }}
)
