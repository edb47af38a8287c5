-- The job's business metrics, as taps on the pipeline's steps: each INSERT reads a step's rows and
-- counts them with COUNTED / OBSERVED_LATENCY (functions/metrics.sql); its sink drops the rows.
-- The job plans each step once and hands its rows to the next step and to its taps alike (see
-- define_pipeline in attribution/pipeline.py): a tap is one more chained filter, never a second
-- parse, lookup or join. Prometheus: flink_taskmanager_job_task_operator_attribution_<label>_<metric>.
{#- The tap's columns for one counted event: COUNTED adds one to the calling operator's counter
    attribution.<label>.<metric> with the label <label>="<label_value>". -#}
{% macro counted(metric, label, label_value) -%}
'{{ metric }}' AS metric, COUNTED({{ label_value }}, '{{ metric }}', '{{ label }}') AS label_value
{%- endmacro %}
{% macro user_kind(user_name) -%}
IF({{ user_name }} IS NULL, 'unknown', 'known')
{%- endmacro %}

-- checkouts{user}: valid checkouts after the user lookup (a checkout delivered twice counts twice).
INSERT INTO {{ sink('metrics') }}
SELECT {{ counted('checkouts', 'user', user_kind('user_name')) }}, CAST(event_time AS TIMESTAMP(3)) AS event_time
FROM checkouts_enriched;

-- checkouts_unattributed{user}: checkouts that event time passed with no qualifying click (the
-- join emits their NULL-click row exactly once); attributed = checkouts - unattributed.
INSERT INTO {{ sink('metrics') }}
SELECT {{ counted('checkouts_unattributed', 'user', user_kind('details.user_name')) }}, checkout_time AS event_time
FROM click_candidates
WHERE click_id IS NULL;

-- late_events{topic}: valid events already behind the watermark on arrival. A late checkout is
-- attributed only to clicks still in state, a late click only to checkouts still in state.
{% for topic, records in [('clicks', 'clicks_checked'), ('checkouts', 'checkouts_checked')] %}
INSERT INTO {{ sink('metrics') }}
SELECT {{ counted('late_events', 'topic', topic | sql_string) }}, CAST(event_time AS TIMESTAMP(3)) AS event_time
FROM {{ records }}
WHERE reject_reason IS NULL AND event_time < CURRENT_WATERMARK(event_time);
{% endfor %}

-- malformed_records{reason}: dead-lettered records.
INSERT INTO {{ sink('metrics') }}
SELECT {{ counted('malformed_records', 'reason', 'reject_reason') }}, CAST(NULL AS TIMESTAMP(3)) AS event_time
FROM rejected_records;

-- checkout_latency_ms: a histogram of now - datetime_occured when a row is handed to the result
-- sink (which flushes within SINK_FLUSH_INTERVAL_MS), for the first model of ATTRIBUTION_MODELS.
-- Updates of a row are observed too.
INSERT INTO {{ sink('metrics') }}
SELECT
    'checkout_latency_ms' AS metric, CAST(NULL AS STRING) AS label_value,
    OBSERVED_LATENCY(checkout_time, {{ cfg.event_time_zone | sql_string }}, 'checkout_latency_ms') AS event_time
FROM {{ cfg.models[0] }}
