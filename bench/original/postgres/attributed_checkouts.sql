-- The original design's result table, with the original's columns (its postgres/init.sql), plus
-- `updated_at`, the time of the row's last write, as the job's table has it: the bench reads the
-- end of a run and each row's latency from it. Rendered with the original design's settings.
CREATE TABLE IF NOT EXISTS {{ cfg.sink_table }} (
    checkout_id VARCHAR PRIMARY KEY,
    user_name VARCHAR,
    click_id VARCHAR,
    product_id VARCHAR,
    payment_method VARCHAR,
    total_amount DECIMAL(5, 2),
    shipping_address VARCHAR,
    billing_address VARCHAR,
    user_agent VARCHAR,
    ip_address VARCHAR,
    checkout_time TIMESTAMP,
    click_time TIMESTAMP,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE OR REPLACE FUNCTION {{ cfg.sink_table | schema_of }}.bench_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER bench_touch_updated_at
    BEFORE UPDATE ON {{ cfg.sink_table }}
    FOR EACH ROW EXECUTE FUNCTION {{ cfg.sink_table | schema_of }}.bench_touch_updated_at();

-- The designs' jobs connect as the job's role (attribution/pipeline.py), which may write only the
-- tables it is granted.
GRANT SELECT, INSERT, UPDATE ON {{ cfg.sink_table }} TO {{ cfg.as_role('job').postgres_user }};
