-- One row per checkout_id, upserted (INSERT ... ON CONFLICT (checkout_id) DO UPDATE).
CREATE TABLE attributed_checkouts (
    checkout_id STRING,
    user_id INT,
    user_name STRING,
    click_id STRING,
    product_id STRING,
    payment_method STRING,
    total_amount DECIMAL(10, 2),
    shipping_address STRING,
    billing_address STRING,
    user_agent STRING,
    ip_address STRING,
    checkout_time TIMESTAMP(3),
    click_time TIMESTAMP(3),
    PRIMARY KEY (checkout_id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = {{ cfg.jdbc_url | sql_string }},
    'table-name' = {{ cfg.sink_table | sql_string }},
    'username' = {{ cfg.postgres_user | sql_string }},
    'password' = {{ cfg.postgres_password | sql_string }},
    'sink.buffer-flush.max-rows' = '{{ cfg.sink_flush_rows }}',
    'sink.buffer-flush.interval' = '{{ cfg.sink_flush_interval_ms }} ms',
    'sink.max-retries' = '{{ cfg.sink_max_retries }}'
)
