-- Benchmark baseline only (make bench, bench/harness.py PASSTHROUGH): the job's sources, parsing
-- and validation, with valid records into a blackhole instead of the attribution (rejected ones go
-- to dead_letters with the job's own code/process/dead_letters.sql). Its throughput is the ceiling
-- the job is compared with.
CREATE TEMPORARY TABLE passthrough_blackhole (
    id STRING,
    user_id INT,
    product_id STRING,
    event_time TIMESTAMP(3)
) WITH ('connector' = 'blackhole');

INSERT INTO passthrough_blackhole
SELECT click_id, user_id, product_id, CAST(event_time AS TIMESTAMP(3)) FROM clicks_checked
WHERE reject_reason IS NULL
UNION ALL
SELECT checkout_id, user_id, product_id, CAST(event_time AS TIMESTAMP(3)) FROM checkouts_checked
WHERE reject_reason IS NULL
