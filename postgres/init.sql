-- Schema of the pipeline; idempotent (applied by every `make up` and the Compose `init` step).
-- A superset of the original project's tables: its columns keep their names and types.
-- Rendered with Jinja2 (attribution/provision.py): the table names are settings.
{%- set sink_name = cfg.sink_table.split('.')[-1] %}
{%- set sink_schema = cfg.sink_table.split('.')[0] if '.' in cfg.sink_table else 'public' %}
{% for schema in schemas %}
CREATE SCHEMA IF NOT EXISTS {{ schema }};
{%- endfor %}

CREATE TABLE IF NOT EXISTS {{ cfg.users_table }} (
    id INT PRIMARY KEY,
    username VARCHAR(255) NOT NULL,
    password VARCHAR(255) NOT NULL
);

CREATE TABLE IF NOT EXISTS {{ cfg.products_table }} (
    id INT PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description VARCHAR(255) NOT NULL,
    price DECIMAL(10, 2) NOT NULL
);

CREATE TABLE IF NOT EXISTS {{ cfg.sink_table }} (
    checkout_id VARCHAR PRIMARY KEY,
    user_name VARCHAR,
    click_id VARCHAR,
    product_id VARCHAR,
    payment_method VARCHAR,
    total_amount DECIMAL(10, 2),
    shipping_address VARCHAR,
    billing_address VARCHAR,
    user_agent VARCHAR,
    ip_address VARCHAR,
    checkout_time TIMESTAMP,
    click_time TIMESTAMP,
    -- Added by this project:
    user_id INT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()  -- when the row was last written
);

CREATE INDEX IF NOT EXISTS {{ sink_name }}_checkout_time ON {{ cfg.sink_table }} (checkout_time);

-- The job upserts rows keyed by checkout_id, and within the job an attribution only ever improves
-- (an earlier click replaces a later one, a click replaces "none"). A replay after recovery, or a
-- duplicate checkout arriving after its ranking state expired, can still send a worse answer;
-- this trigger keeps the better one, so every write is idempotent and order-insensitive.
CREATE OR REPLACE FUNCTION {{ sink_schema }}.keep_earliest_attribution() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Ties on click_time go to the smaller click_id in byte order (COLLATE "C"), as the job
    -- ranks them; the database's own collation (en_US in the Compose image) may order differently.
    IF OLD.click_id IS NOT NULL AND (
        NEW.click_id IS NULL
        OR (NEW.click_time, NEW.click_id COLLATE "C") > (OLD.click_time, OLD.click_id COLLATE "C")
    ) THEN
        NEW.click_id := OLD.click_id;
        NEW.click_time := OLD.click_time;
    END IF;
    NEW.user_name := COALESCE(NEW.user_name, OLD.user_name);
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER keep_earliest_attribution
    BEFORE UPDATE ON {{ cfg.sink_table }}
    FOR EACH ROW EXECUTE FUNCTION {{ sink_schema }}.keep_earliest_attribution();

-- Records the job could not use, with the reason (see README, "Bad input").
CREATE TABLE IF NOT EXISTS {{ cfg.dead_letter_table }} (
    source_topic VARCHAR NOT NULL,
    source_partition INT NOT NULL,
    source_offset BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    payload TEXT,
    payload_chars INT,
    kafka_timestamp TIMESTAMP,
    written_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (source_topic, source_partition, source_offset)
);
