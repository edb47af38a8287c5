-- Where the metric taps (process/metrics.sql) end: the counting happens in the functions they call,
-- so the rows are dropped. The unit tests collect them instead, to check the counts.
CREATE TABLE job_metrics (
    metric STRING,
    label_value STRING,
    event_time TIMESTAMP(3)
) WITH (
    'connector' = 'blackhole'
)
