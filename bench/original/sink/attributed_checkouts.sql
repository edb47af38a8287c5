-- The original's code/sink/attributed_checkouts.sql (Flink 1.17), ported to Flink 2.0 for the
-- benchmark's baseline (bench/original/README.md): renamed, values from the project's settings.
-- The bench sets SINK_TABLE to commerce.original_attributed_checkouts for this job and creates
-- that table; the connector's default batching (1 s / 100 rows), as in the original.
CREATE TABLE original_attributed_checkouts (
    checkout_id STRING,
    user_name STRING,
    click_id STRING,
    product_id STRING,
    payment_method STRING,
    total_amount DECIMAL(5, 2),
    shipping_address STRING,
    billing_address STRING,
    user_agent STRING,
    ip_address STRING,
    checkout_time TIMESTAMP(3),
    click_time TIMESTAMP,
    PRIMARY KEY (checkout_id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = {{ cfg.jdbc_url | sql_string }},
    'table-name' = {{ cfg.sink_table | sql_string }},
    'username' = {{ cfg.postgres_user | sql_string }},
    'password' = {{ cfg.postgres_password | sql_string }},
    'driver' = 'org.postgresql.Driver'
);
