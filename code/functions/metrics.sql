-- COUNTED(value, 'metric', 'label', label_value) returns value and counts one event in the Flink
-- counter attribution.<label>.<metric> of the operator that evaluates it; Prometheus sees
-- flink_taskmanager_job_task_operator_attribution_<label>_<metric>{<label>="<label_value>"}.
-- Source: udf/src/main/java/attribution/udf/Counted.java.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS COUNTED AS 'attribution.udf.Counted' LANGUAGE JAVA
