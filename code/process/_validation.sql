{#- The payload parsed once per record: the view's FROM clause is
        <source table>, {{ parsed_payload([field, ...]) }}
    and the macros below read its columns through the alias `f`. -#}
{% macro parsed_payload(fields) -%}
LATERAL TABLE(JSON_FIELDS(payload, {{ fields | map('sql_string') | join(', ') }})) AS f
{%- endmacro %}

{#- Why a record is rejected, or NULL when it is usable. The first failing check names the reason.
    Only what the attribution needs is mandatory (id, user_id, product_id, datetime_occured);
    descriptive fields are optional, but a present field of the wrong type is rejected. -#}
{% macro common_reject_reason(id_field) -%}
CASE
    WHEN payload IS NULL OR f.payload_chars = 0 THEN 'empty_payload'
    -- An event is a few hundred bytes; megabytes of it are a producer bug, not a checkout.
    WHEN f.payload_chars > {{ cfg.max_payload_chars }} THEN 'payload_too_large'
    WHEN NOT f.payload_is_object THEN 'not_json_object'
    -- Postgres text cannot hold NUL characters: writing one would fail the sink on every retry.
    -- (A raw NUL byte is not valid JSON; this is the escaped \u0000 in a field.)
    WHEN f.payload_has_nul THEN 'nul_character'
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

{#- A top-level JSON scalar as text (a column of parsed_payload), NULL when absent, JSON null, an
    array or an object. -#}
{% macro field(name) -%}
f.{{ name }}
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
    payload_chars,
    CAST(kafka_timestamp AS TIMESTAMP(3)) AS kafka_timestamp
{%- endmacro %}
