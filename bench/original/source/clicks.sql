-- The original's code/source/clicks.sql (Flink 1.17), ported to Flink 2.0 for the benchmark's
-- baseline (bench/original/README.md): renamed, values from the project's settings.
CREATE TABLE original_clicks (
    click_id STRING,
    user_id INT,
    product_id STRING,
    product STRING,
    price DOUBLE,
    url STRING,
    user_agent STRING,
    ip_address STRING,
    datetime_occured TIMESTAMP(3),
    processing_time AS PROCTIME(),
    WATERMARK FOR datetime_occured AS datetime_occured - INTERVAL '15' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = {{ cfg.clicks_topic | sql_string }},
    'properties.bootstrap.servers' = {{ cfg.kafka_bootstrap_servers | sql_string }},
    'properties.group.id' = {{ cfg.consumer_group_id | sql_string }},
    'scan.startup.mode' = {{ cfg.scan_startup_mode | sql_string }},
    'format' = 'json'
);
