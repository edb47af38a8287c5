-- Reading the raw event text, parsing each record once (JSON_VALUE parses once per call, and CAST
-- to TIMESTAMP goes through a costly DateTimeFormatter; together they were most of the job's CPU):
--   JSON_FIELD(payload, 'name')      as JSON_VALUE(payload, '$.name') for top-level scalars
--   JSON_TIMESTAMP(payload, 'name')  the field 'YYYY-MM-DD HH:MM:SS[.fff]' as TIMESTAMP(3), else NULL
--   IS_JSON_OBJECT(payload)          exactly one JSON object, nothing after it
--   JSON_CONTAINS_NUL(payload)       a top-level field name or scalar holds U+0000
-- Source: udf/src/main/java/attribution/udf/, compiled by `make setup`, shipped with the job.
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS JSON_FIELD AS 'attribution.udf.JsonField' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS JSON_TIMESTAMP AS 'attribution.udf.JsonTimestamp' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS IS_JSON_OBJECT AS 'attribution.udf.IsJsonObject' LANGUAGE JAVA;
CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS JSON_CONTAINS_NUL AS 'attribution.udf.JsonContainsNul' LANGUAGE JAVA
