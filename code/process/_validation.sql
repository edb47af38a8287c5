{#- Why a record is rejected, or NULL when it is usable. The first failing check names the reason.
    Only what the attribution needs is mandatory (id, user_id, product_id, datetime_occured);
    descriptive fields are optional, but a present field of the wrong type is rejected. -#}
{% macro common_reject_reason(id_field) -%}
CASE
    WHEN payload IS NULL OR CHAR_LENGTH(payload) = 0 THEN 'empty_payload'
    -- An event is a few hundred bytes; megabytes of it are a producer bug, not a checkout.
    WHEN CHAR_LENGTH(payload) > {{ cfg.max_payload_chars }} THEN 'payload_too_large'
    WHEN NOT IS_JSON_OBJECT(payload) THEN 'not_json_object'
    -- Postgres text cannot hold NUL characters: writing one would fail the sink on every retry.
    -- (A raw NUL byte is not valid JSON; this is the escaped \u0000 in a field.)
    WHEN JSON_CONTAINS_NUL(payload) THEN 'nul_character'
    WHEN {{ text(id_field) }} IS NULL THEN 'missing_{{ id_field }}'
    WHEN {{ field('user_id') }} IS NULL THEN 'missing_user_id'
    WHEN TRY_CAST({{ field('user_id') }} AS INT) IS NULL THEN 'invalid_user_id'
    WHEN {{ text('product_id') }} IS NULL THEN 'missing_product_id'
    WHEN {{ field('datetime_occured') }} IS NULL THEN 'missing_datetime_occured'
    WHEN event_time = TIMESTAMP '1970-01-01 00:00:00.000'
         AND JSON_TIMESTAMP(payload, 'datetime_occured') IS NULL
        THEN 'invalid_datetime_occured'
    WHEN event_time = TIMESTAMP '1970-01-01 00:00:00.000'
         AND JSON_TIMESTAMP(payload, 'datetime_occured')
             > CAST(kafka_timestamp AS TIMESTAMP(3))
        THEN 'datetime_occured_in_future'
{%- endmacro %}

{#- A top-level JSON scalar as text, NULL when absent, JSON null, an array or an object.
    JSON_FIELD parses the payload once per record however many fields are read. -#}
{% macro field(name) -%}
JSON_FIELD(payload, '{{ name }}')
{%- endmacro %}

{#- A JSON field as trimmed text, NULL when absent, JSON null or empty. -#}
{% macro text(name) -%}
NULLIF(TRIM({{ field(name) }}), '')
{%- endmacro %}

{#- Columns every dead letter carries. -#}
{% macro dead_letter_columns(reason) -%}
    kafka_topic AS source_topic,
    kafka_partition AS source_partition,
    kafka_offset AS source_offset,
    {{ reason }} AS reason,
    -- Stored for inspection and replay; capped so that one oversized record cannot bloat the table.
    SUBSTRING(REPLACE(COALESCE(payload, ''), CHR(0), ''), 1, {{ cfg.max_payload_chars }}) AS payload,
    CHAR_LENGTH(payload) AS payload_chars,
    CAST(kafka_timestamp AS TIMESTAMP(3)) AS kafka_timestamp
{%- endmacro %}
