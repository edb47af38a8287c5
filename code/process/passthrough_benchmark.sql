-- Benchmark baseline only (make bench): the same sources and parsing as the job, into a blackhole.
-- Its throughput is the ceiling that the attribution job is compared with.
CREATE TEMPORARY TABLE passthrough_blackhole (
    id STRING,
    user_id INT,
    product_id STRING,
    event_time TIMESTAMP(3),
    reject_reason STRING
) WITH ('connector' = 'blackhole');

INSERT INTO passthrough_blackhole
SELECT click_id, user_id, product_id, CAST(event_time AS TIMESTAMP(3)), reject_reason FROM clicks_checked
UNION ALL
SELECT checkout_id, user_id, product_id, CAST(event_time AS TIMESTAMP(3)), reject_reason FROM checkouts_checked
