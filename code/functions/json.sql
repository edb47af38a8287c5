-- Reading the raw event bytes (UTF-8 JSON), each record parsed once (udf/src/main/java/attribution/udf/):
--   LATERAL TABLE(JSON_FIELDS(payload, 'name', ...))  one row per record: payload_chars,
--       payload_is_object, payload_has_nul, and each named top-level field as text
--   JSON_TIMESTAMP(payload, 'name')  the field 'YYYY-MM-DD HH:MM:SS[.fff]' as TIMESTAMP(3), else NULL
-- JSON_VALUE parses the whole document on every call and CAST to TIMESTAMP goes through a costly
-- DateTimeFormatter: docs/benchmark-history.md has what they cost.
-- Compiled by `make setup`, on the cluster's classpath.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS JSON_FIELDS AS 'attribution.udf.JsonFields' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS JSON_TIMESTAMP AS 'attribution.udf.JsonTimestamp' LANGUAGE JAVA
