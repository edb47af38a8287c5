{% from "sink/_jdbc.sql" import jdbc_options with context %}
-- User names for enrichment, looked up per checkout and cached: without the cache every checkout
-- is a Postgres round trip. Misses are cached too (an unknown user is common in bad traffic), for
-- at most LOOKUP_CACHE_TTL_SECONDS, after which a newly registered user is seen.
CREATE TABLE users (
    id INT,
    username STRING,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    {{ jdbc_options(cfg.users_table) }},
    'lookup.cache' = 'PARTIAL',
    'lookup.partial-cache.max-rows' = '{{ cfg.lookup_cache_rows }}',
    'lookup.partial-cache.expire-after-write' = '{{ cfg.lookup_cache_ttl_seconds }} s',
    'lookup.partial-cache.cache-missing-key' = 'true',
    'lookup.max-retries' = '{{ cfg.lookup_max_retries }}'
)
