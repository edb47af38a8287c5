{% from "source/_event_time.sql" import unusable_time %}
{#- Parsing and validation of raw events (process/parse_clicks.sql, parse_checkouts.sql). Every
    macro here is a closed expression (or, parsed_payload, a closed FROM item).

    A view parses its payload once, with this FROM clause:
        FROM <raw source>, {{ parsed_payload(id_field, text_fields, amount_fields) }}
    and reads the parsed fields with field() / text() / the typed macros, through the alias that
    parsed_payload() declares. The typed forms are columns of JSON_FIELDS, not SQL here: the
    planner would copy each TRY_CAST or TRIM into every check that reads it
    (udf/.../JsonFields.java). -#}
{% set parsed = 'parsed' %}
{#- The sink's total_amount: DECIMAL(10, 2). -#}
{% set amount_form = 'decimal(10,2)' %}

{#- A column of parsed_payload(), by its JSON_FIELDS spec ('name' or 'name:form'). -#}
{% macro column(spec) -%}
{{ parsed }}.`{{ spec }}`
{%- endmacro %}

{#- One row per record: payload_chars, payload_is_object, payload_has_nul, and the fields that
    reject_reason() checks, each of text_fields as text, each of amount_fields as text and as the
    sink's DECIMAL. -#}
{% macro parsed_payload(id_field, text_fields=[], amount_fields=[]) -%}
{%- set specs = [id_field ~ ':trimmed', 'user_id', 'user_id:int', 'product_id:trimmed',
                 'datetime_occured', 'datetime_occured:timestamp'] + text_fields -%}
LATERAL TABLE(JSON_FIELDS(payload, {{ specs | map('sql_string') | join(', ') }}
{%- for name in amount_fields %}, {{ name | sql_string }}, {{ (name ~ ':' ~ amount_form) | sql_string }}{% endfor %})) AS {{ parsed }}
{%- endmacro %}

{#- A JSON scalar as text (NULL when absent, JSON null, an array or an object), or payload_chars /
    payload_is_object / payload_has_nul. -#}
{% macro field(name) -%}
{{ column(name) }}
{%- endmacro %}

{#- A JSON field as trimmed text, NULL when absent, JSON null or empty. -#}
{% macro text(name) -%}
{{ column(name ~ ':trimmed') }}
{%- endmacro %}

{#- A JSON field as INT, NULL when absent or not an integer. -#}
{% macro int_field(name) -%}
{{ column(name ~ ':int') }}
{%- endmacro %}

{#- A JSON field as the sink's DECIMAL(10, 2), NULL when absent, not a number or too large. -#}
{% macro amount_field(name) -%}
{{ column(name ~ ':' ~ amount_form) }}
{%- endmacro %}

{#- Why a record cannot be used, or NULL when it can. The first failing check names the reason.
    Only what the attribution needs is mandatory (id, user_id, product_id, datetime_occured);
    descriptive fields are optional, and an amount field (amount_fields of parsed_payload) may be
    absent but must fit the sink. -#}
{% macro reject_reason(id_field, amount=none) -%}
CASE
    WHEN payload IS NULL OR {{ field('payload_chars') }} = 0 THEN 'empty_payload'
    -- An event is a few hundred bytes; megabytes of it are a producer bug, not a checkout.
    WHEN {{ field('payload_chars') }} > {{ cfg.max_payload_chars }} THEN 'payload_too_large'
    WHEN NOT {{ field('payload_is_object') }} THEN 'not_json_object'
    -- Postgres text cannot hold NUL characters: writing one would fail the sink on every retry.
    -- (A raw NUL byte is not valid JSON; this is the escaped \u0000 in a field.)
    WHEN {{ field('payload_has_nul') }} THEN 'nul_character'
    WHEN {{ text(id_field) }} IS NULL THEN 'missing_{{ id_field }}'
    -- A primary-key column of the output tables (ID_MAX_CHARS in attribution/config.py).
    WHEN CHAR_LENGTH({{ text(id_field) }}) > {{ id_max_chars }} THEN '{{ id_field }}_too_long'
    WHEN {{ field('user_id') }} IS NULL THEN 'missing_user_id'
    WHEN {{ int_field('user_id') }} IS NULL THEN 'invalid_user_id'
    WHEN {{ text('product_id') }} IS NULL THEN 'missing_product_id'
    WHEN {{ field('datetime_occured') }} IS NULL THEN 'missing_datetime_occured'
    -- The source gives an unusable datetime_occured the rowtime unusable_time(); which kind
    -- (not compared with the clock again: the source's reading of it decided):
    WHEN event_time = {{ unusable_time() }} AND {{ column('datetime_occured:timestamp') }} IS NULL
        THEN 'invalid_datetime_occured'
    WHEN event_time = {{ unusable_time() }}
         AND {{ column('datetime_occured:timestamp') }} > {{ unusable_time() }}
        THEN 'datetime_occured_in_future'
    WHEN event_time = {{ unusable_time() }} THEN 'datetime_occured_too_early'
{%- if amount %}
    -- DECIMAL(10, 2) in the sink: an amount that does not fit would fail every write.
    WHEN {{ field(amount) }} IS NOT NULL AND {{ amount_field(amount) }} IS NULL
        THEN 'invalid_{{ amount }}'
    WHEN {{ amount_field(amount) }} < 0 THEN 'negative_{{ amount }}'
{%- endif %}
END
{%- endmacro %}
