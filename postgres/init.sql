-- Schema of the pipeline; idempotent (applied by every `make up` and the Compose `init` step).
-- A superset of the original project's tables: its columns keep their names and types.
-- Rendered with Jinja2 (attribution/provision.py): the table names are settings.
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

{#- Which delivery of a checkout a row is of: the checkout record's Kafka timestamp, partition and
    offset. The first delivery wins, as in the job (process/_attribution_models.sql). #}
{% macro delivery(row) -%}
({{ row }}.delivered_at, {{ row }}.delivery_partition, {{ row }}.delivery_offset)
{%- endmacro %}

{% macro delivery_columns(table) -%}
ALTER TABLE {{ table }} ADD COLUMN IF NOT EXISTS delivered_at TIMESTAMP;
ALTER TABLE {{ table }} ADD COLUMN IF NOT EXISTS delivery_partition INT;
ALTER TABLE {{ table }} ADD COLUMN IF NOT EXISTS delivery_offset BIGINT;
{%- endmacro %}

{#- The columns of a model that attributes each checkout to one click (first_click, last_click). #}
{% macro one_click_table(table) -%}
CREATE TABLE IF NOT EXISTS {{ table }} (
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
{{ delivery_columns(table) }}

CREATE INDEX IF NOT EXISTS {{ table | unqualified }}_checkout_time ON {{ table }} (checkout_time);
{%- endmacro %}

{#- The job upserts rows keyed by checkout_id, and within the job an attribution only ever improves
    for its model (first_click: an earlier click replaces a later one; last_click: a later one an
    earlier one; a click replaces "none"). A checkout delivered again after the job's state for it
    expired writes a row of that later delivery: the first delivery wins every column, as in the
    job, so such a write changes nothing, and a row of an earlier delivery replaces the row of a
    later one. A replay after recovery can still send a worse answer; this trigger keeps the better
    one, so every write is idempotent and order-insensitive. Ties on click_time go to the smaller
    (ASC) or larger (DESC) click_id in byte order (COLLATE "C"), as the job ranks them; the
    database's own collation (en_US in the Compose image) may order differently. #}
{% macro keep_better_attribution(table, order) -%}
{%- set function = 'keep_earliest_attribution' if order == 'ASC' else 'keep_latest_attribution' %}
CREATE OR REPLACE FUNCTION {{ table | schema_of }}.{{ function }}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {{ delivery('NEW') }} > {{ delivery('OLD') }} THEN
        RETURN NULL;  -- a later delivery of the checkout: the first one's row stays as it is
    ELSIF {{ delivery('NEW') }} < {{ delivery('OLD') }} THEN
        NEW.updated_at := clock_timestamp();
        RETURN NEW;  -- an earlier delivery: its row, whatever it attributes
    END IF;
    IF OLD.click_id IS NOT NULL AND (
        NEW.click_id IS NULL
        OR (NEW.click_time, NEW.click_id COLLATE "C") {{ '>' if order == 'ASC' else '<' }} (OLD.click_time, OLD.click_id COLLATE "C")
    ) THEN
        NEW.click_id := OLD.click_id;
        NEW.click_time := OLD.click_time;
    END IF;
    NEW.user_name := COALESCE(NEW.user_name, OLD.user_name);
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER {{ function }}
    BEFORE UPDATE ON {{ table }}
    FOR EACH ROW EXECUTE FUNCTION {{ table | schema_of }}.{{ function }}();
{%- endmacro %}

{#- A touches model's table: one row per qualifying click (upserted by checkout_id, click_id and
    click_time: a repeat writes the same row); the model's view (postgres/models/<model>.sql)
    gives each touch its credit when it is read, so the credits of a checkout always add up to its
    amount, even while a click that arrived out of order is being added. No row: no qualifying
    click. #}
{% macro touches_table(table) -%}
CREATE TABLE IF NOT EXISTS {{ table }} (
    checkout_id VARCHAR NOT NULL,
    click_id VARCHAR NOT NULL,
    click_time TIMESTAMP NOT NULL,
    total_amount DECIMAL(10, 2),
    product_id VARCHAR,
    checkout_time TIMESTAMP,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (checkout_id, click_id, click_time)
);

{{ delivery_columns(table) }}

CREATE INDEX IF NOT EXISTS {{ table | unqualified }}_checkout_time ON {{ table }} (checkout_time);

-- A click written again for another delivery of its checkout: the row stays the first delivery's.
CREATE OR REPLACE FUNCTION {{ table | schema_of }}.keep_first_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF {{ delivery('NEW') }} < {{ delivery('OLD') }} THEN
        NEW.updated_at := clock_timestamp();
        RETURN NEW;
    END IF;
    NEW.total_amount := OLD.total_amount;
    NEW.product_id := OLD.product_id;
    NEW.checkout_time := OLD.checkout_time;
    NEW.delivered_at := OLD.delivered_at;
    NEW.delivery_partition := OLD.delivery_partition;
    NEW.delivery_offset := OLD.delivery_offset;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER keep_first_touch
    BEFORE UPDATE ON {{ table }}
    FOR EACH ROW EXECUTE FUNCTION {{ table | schema_of }}.keep_first_touch();
{%- endmacro %}

{#- A touches model's clicks as its view reads them: each click once, at its earliest qualifying
    time, of the checkout's first delivery only (the job writes the clicks of each delivery). #}
{% macro first_delivery_touches(table) -%}
SELECT DISTINCT ON (checkout_id, click_id)
    checkout_id, click_id, click_time, total_amount, product_id, checkout_time, updated_at
FROM (
    SELECT *, rank() OVER (
        PARTITION BY checkout_id ORDER BY delivered_at, delivery_partition, delivery_offset
    ) AS delivery_rank
    FROM {{ table }}
) AS delivered
WHERE delivery_rank = 1
ORDER BY checkout_id, click_id, click_time
{%- endmacro %}

{#- Credits in cents that add up to the checkout's amount exactly, from `weighted` (a touch per
    row with `weight`, `position`: 1 for the earliest click, `touches`, and the touch's columns):
    each touch gets the whole cents of its share, and the cents left over go one each to the
    touches with the largest remainders (ties: the earlier click), the largest remainder method.
    No amount: no credit. #}
{% macro credit_in_cents(weighted) -%}
share AS (
    SELECT *, total_amount * 100 * weight / sum(weight) OVER (PARTITION BY checkout_id) AS exact_cents
    FROM {{ weighted }}
), floored AS (
    SELECT *, floor(exact_cents) AS whole_cents FROM share
), ranked AS (
    SELECT *,
           total_amount * 100 - sum(whole_cents) OVER (PARTITION BY checkout_id) AS cents_left,
           row_number() OVER (
               PARTITION BY checkout_id ORDER BY exact_cents - whole_cents DESC, position
           ) AS remainder_rank
    FROM floored
)
SELECT
    checkout_id, click_id, click_time,
    ((whole_cents + CASE WHEN remainder_rank <= cents_left THEN 1 ELSE 0 END) / 100)::numeric(12, 2) AS credit,
    touches::int AS touches, product_id, checkout_time, updated_at
FROM ranked
{%- endmacro %}

{#- A touches model's clicks in order (click_time, then click_id in byte order), with `position`
    (1: the earliest) and `touches` (the checkout's clicks). #}
{% macro ordered_touches(table) -%}
ordered AS (
    SELECT t.*,
           row_number() OVER (PARTITION BY checkout_id ORDER BY click_time, click_id COLLATE "C") AS position,
           count(*) OVER (PARTITION BY checkout_id) AS touches
    FROM ({{ first_delivery_touches(table) }}) AS t
)
{%- endmacro %}

{#- DELETE on a touches model's view deletes the touches from its table (a view with a window
    function is not updatable by itself). #}
{% macro deletable(view, table) -%}
{%- set function = (view | unqualified) ~ '_delete_touch' %}
CREATE OR REPLACE FUNCTION {{ table | schema_of }}.{{ function }}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {{ table }} WHERE checkout_id = OLD.checkout_id AND click_id = OLD.click_id;
    RETURN OLD;
END
$$;

CREATE OR REPLACE TRIGGER delete_touch
    INSTEAD OF DELETE ON {{ view }}
    FOR EACH ROW EXECUTE FUNCTION {{ table | schema_of }}.{{ function }}();
{%- endmacro %}

-- Every model's tables (attribution/models.py), whether or not the job writes it now.
{% for model in registry.values() %}
{%- set table, written = cfg.model_table(model.name), cfg.model_written_table(model.name) %}
-- {{ model.name }}: {{ model.summary }}.
{% if model.shape == 'one_click' -%}
{{ one_click_table(written) }}

{{ keep_better_attribution(written, model.order) }}
{% else -%}
{{ touches_table(written) }}

{% include "postgres/models/" ~ model.name ~ ".sql" %}

{{ deletable(table, written) }}
{% endif %}
{% endfor %}
{%- set one_click = registry.values() | selectattr('shape', 'equalto', 'one_click') | list %}
{%- set touches = registry.values() | rejectattr('shape', 'equalto', 'one_click') | list %}
-- The models side by side (`make status`, the Grafana panel "Attribution models"): every model
-- attributes the same checkouts (those with a qualifying click), so share and revenue agree; they
-- differ in which clicks get the credit (minutes from the credited click, clicks sharing it). A
-- touches table has no row for an unattributed checkout: its denominator is the checkouts of a
-- one-click table since its own first checkout (it may have been enabled later).
CREATE OR REPLACE VIEW {{ cfg.model_comparison_view }} AS
WITH one_click AS (
{%- for model in one_click %}
    SELECT '{{ model.name }}' AS model, count(*) AS checkouts, count(click_id) AS attributed_checkouts,
           sum(total_amount) FILTER (WHERE click_id IS NOT NULL) AS attributed_revenue,
           avg(EXTRACT(EPOCH FROM checkout_time - click_time) / 60) AS avg_minutes_click_to_checkout,
           CASE WHEN count(click_id) > 0 THEN 1 END AS clicks_credited_per_checkout
           {%- for other in touches %},
           -- the touches view's checkouts, by index
           count(*) FILTER (
               WHERE checkout_time >= (SELECT min(checkout_time) FROM {{ cfg.model_written_table(other.name) }})
           ) AS checkouts_since_{{ other.name }}
           {%- endfor %}
    FROM {{ cfg.model_table(model.name) }}
    {{- "\n    UNION ALL" if not loop.last }}
{%- endfor %}
), models AS (
    SELECT model, checkouts, attributed_checkouts, attributed_revenue, avg_minutes_click_to_checkout,
           clicks_credited_per_checkout
    FROM one_click
{%- for model in touches %}
    UNION ALL
    SELECT '{{ model.name }}' AS model,
           (SELECT NULLIF(max(checkouts_since_{{ model.name }}), 0) FROM one_click) AS checkouts,
           count(DISTINCT checkout_id) AS attributed_checkouts, sum(credit) AS attributed_revenue,
           avg(EXTRACT(EPOCH FROM checkout_time - click_time) / 60) AS avg_minutes_click_to_checkout,
           count(*)::numeric / NULLIF(count(DISTINCT checkout_id), 0) AS clicks_credited_per_checkout
    FROM {{ cfg.model_table(model.name) }}
{%- endfor %}
)
SELECT model, checkouts, attributed_checkouts,
       round(attributed_checkouts::numeric / NULLIF(checkouts, 0), 4) AS attributed_share,
       round(attributed_revenue, 2) AS attributed_revenue,
       round(avg_minutes_click_to_checkout::numeric, 1) AS avg_minutes_click_to_checkout,
       round(clicks_credited_per_checkout, 2) AS clicks_credited_per_checkout
FROM models;

-- Records the job could not use, with the reason (docs/reliability.md). Keyed by where the record
-- was read and its Kafka timestamp: a replay after recovery rewrites the same row, and a broker that
-- started its offsets at 0 again adds rows instead of overwriting old ones. Rows older than
-- DEAD_LETTER_RETENTION_DAYS are deleted by the keeper; `make replay-dead-letters` sets replayed_at.
CREATE TABLE IF NOT EXISTS {{ cfg.dead_letter_table }} (
    source_topic VARCHAR NOT NULL,
    source_partition INT NOT NULL,
    source_offset BIGINT NOT NULL,
    reason VARCHAR NOT NULL,
    payload TEXT,
    payload_chars INT,
    kafka_timestamp TIMESTAMP NOT NULL,
    written_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    replayed_at TIMESTAMPTZ,
    PRIMARY KEY (source_topic, source_partition, source_offset, kafka_timestamp)
);

-- A table made by an earlier version: keyed without the timestamp, and no replayed_at.
ALTER TABLE {{ cfg.dead_letter_table }} ADD COLUMN IF NOT EXISTS replayed_at TIMESTAMPTZ;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_index AS i
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
        WHERE i.indrelid = '{{ cfg.dead_letter_table }}'::regclass AND i.indisprimary
          AND a.attname = 'kafka_timestamp'
    ) THEN
        UPDATE {{ cfg.dead_letter_table }} SET kafka_timestamp = 'epoch' WHERE kafka_timestamp IS NULL;
        ALTER TABLE {{ cfg.dead_letter_table }} ALTER COLUMN kafka_timestamp SET NOT NULL;
        ALTER TABLE {{ cfg.dead_letter_table }} DROP CONSTRAINT {{ cfg.dead_letter_table | unqualified }}_pkey;
        ALTER TABLE {{ cfg.dead_letter_table }}
            ADD PRIMARY KEY (source_topic, source_partition, source_offset, kafka_timestamp);
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS {{ cfg.dead_letter_table | unqualified }}_written_at
    ON {{ cfg.dead_letter_table }} (written_at);

-- Roles, each with only the rights its client needs (attribution/config.py ROLES); their
-- passwords are derived from one secret and set again by every `make up` (a rotation).
{%- for role, password in roles.values() %}
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{{ role }}') THEN
        CREATE ROLE {{ role }} LOGIN;
    END IF;
END
$$;
ALTER ROLE {{ role }} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {{ password | sql_string }};
{%- endfor %}
{% set job, reader, generator = roles.job[0], roles.reader[0], roles.generator[0] %}
{%- set results = cfg.model_written_tables + [cfg.dead_letter_table] %}
{%- for schema in schemas %}
GRANT USAGE ON SCHEMA {{ schema }} TO {{ job }}, {{ reader }}, {{ generator }};
{%- endfor %}
-- The job: writes its results and dead letters (upserts), looks users up (never their passwords).
GRANT SELECT, INSERT, UPDATE ON {{ results | join(', ') }} TO {{ job }};
GRANT SELECT (id, username) ON {{ cfg.users_table }} TO {{ job }};
-- The reader: results, dead letters and user names.
GRANT SELECT ON {{ (results + cfg.model_views + [cfg.model_comparison_view]) | join(', ') }} TO {{ reader }};
GRANT SELECT (id, username) ON {{ cfg.users_table }} TO {{ reader }};
-- The generator: users and products, nothing else.
GRANT SELECT, INSERT ON {{ cfg.users_table }}, {{ cfg.products_table }} TO {{ generator }};
