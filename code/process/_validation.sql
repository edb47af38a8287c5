{% from "source/_event_time.sql" import occurred_at, unusable_time %}
{#- Parsing and validation of raw events (process/parse_clicks.sql, parse_checkouts.sql). Every
    macro here is a closed expression (or, parsed_payload, a closed FROM item).

    A view parses its payload once, with this FROM clause:
        FROM <raw source>, {{ parsed_payload([field, ...]) }}
    and reads the parsed fields with field() / text() / the typed macros, through the alias that
    parsed_payload() declares: -#}
{% set parsed = 'parsed' %}

{#- One row per record: payload_chars, payload_is_object, payload_has_nul, and each named
    top-level JSON field as text (udf/.../JsonFields.java). -#}
{% macro parsed_payload(fields) -%}
LATERAL TABLE(JSON_FIELDS(payload, {{ fields | map('sql_string') | join(', ') }})) AS {{ parsed }}
{%- endmacro %}

{#- A column of parsed_payload(): a JSON scalar as text (NULL when absent, JSON null, an array or
    an object), or payload_chars / payload_is_object / payload_has_nul. -#}
{% macro field(name) -%}
{{ parsed }}.{{ name }}
{%- endmacro %}

{#- A JSON field as trimmed text, NULL when absent, JSON null or empty. -#}
{% macro text(name) -%}
NULLIF(TRIM({{ field(name) }}), '')
{%- endmacro %}

{#- A JSON field as INT, NULL when absent or not an integer. -#}
{% macro int_field(name) -%}
TRY_CAST({{ field(name) }} AS INT)
{%- endmacro %}

{#- A JSON field as the sink's DECIMAL(10, 2), NULL when absent, not a number or too large. -#}
{% macro amount_field(name) -%}
TRY_CAST({{ field(name) }} AS DECIMAL(10, 2))
{%- endmacro %}

{#- Why a record cannot be used, or NULL when it can. The first failing check names the reason.
    Only what the attribution needs is mandatory (id, user_id, product_id, datetime_occured);
    descriptive fields are optional. -#}
{% macro record_reject_reason(id_field) -%}
CASE
    WHEN payload IS NULL OR {{ field('payload_chars') }} = 0 THEN 'empty_payload'
    -- An event is a few hundred bytes; megabytes of it are a producer bug, not a checkout.
    WHEN {{ field('payload_chars') }} > {{ cfg.max_payload_chars }} THEN 'payload_too_large'
    WHEN NOT {{ field('payload_is_object') }} THEN 'not_json_object'
    -- Postgres text cannot hold NUL characters: writing one would fail the sink on every retry.
    -- (A raw NUL byte is not valid JSON; this is the escaped \u0000 in a field.)
    WHEN {{ field('payload_has_nul') }} THEN 'nul_character'
    WHEN {{ text(id_field) }} IS NULL THEN 'missing_{{ id_field }}'
    WHEN {{ field('user_id') }} IS NULL THEN 'missing_user_id'
    WHEN {{ int_field('user_id') }} IS NULL THEN 'invalid_user_id'
    WHEN {{ text('product_id') }} IS NULL THEN 'missing_product_id'
    WHEN {{ field('datetime_occured') }} IS NULL THEN 'missing_datetime_occured'
    -- The source gives an unusable datetime_occured the rowtime unusable_time(); which kind:
    WHEN event_time = {{ unusable_time() }} AND {{ occurred_at() }} IS NULL
        THEN 'invalid_datetime_occured'
    WHEN event_time = {{ unusable_time() }} AND {{ occurred_at() }} > CAST(kafka_timestamp AS TIMESTAMP(3))
        THEN 'datetime_occured_in_future'
END
{%- endmacro %}

{#- Why a checkout's total_amount cannot be used, or NULL when it can (it may be absent). -#}
{% macro amount_reject_reason() -%}
CASE
    -- DECIMAL(10, 2) in the sink: an amount that does not fit would fail every write.
    WHEN {{ field('total_amount') }} IS NOT NULL AND {{ amount_field('total_amount') }} IS NULL
        THEN 'invalid_total_amount'
    WHEN {{ amount_field('total_amount') }} < 0 THEN 'negative_total_amount'
END
{%- endmacro %}
