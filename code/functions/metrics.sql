-- COUNTED(value, 'metric', 'label', label_value) returns value and counts one event in the Flink
-- counter attribution.<label>.<metric> of the operator that evaluates it; Prometheus sees
-- flink_taskmanager_job_task_operator_attribution_<label>_<metric>{<label>="<label_value>"}.
-- COUNTED(value, 'metric', 'label') does the same with the value as the label's value.
-- OBSERVED_LATENCY(event_time, 'zone', 'metric') returns event_time and records now - event_time
-- (ms) in the histogram attribution.<metric>; Prometheus sees a summary with quantiles.
-- Sources: udf/src/main/java/attribution/udf/Counted.java, ObservedLatency.java.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS COUNTED AS 'attribution.udf.Counted' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS OBSERVED_LATENCY AS 'attribution.udf.ObservedLatency' LANGUAGE JAVA
