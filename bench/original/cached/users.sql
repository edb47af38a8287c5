-- The fair baseline's user lookup: the original's users table (bench/original/source/users.sql)
-- with the lookup cache Flink's JDBC connector documents, sized by the job's own settings, as
-- anyone porting the original design today would write it.
CREATE TEMPORARY TABLE original_users (
    id INT,
    username STRING,
    PASSWORD STRING,
    PRIMARY KEY (id) NOT ENFORCED
) WITH (
    'connector' = 'jdbc',
    'url' = {{ cfg.jdbc_url | sql_string }},
    'table-name' = {{ cfg.users_table | sql_string }},
    'username' = {{ cfg.postgres_user | sql_string }},
    'password' = {{ cfg.postgres_password | sql_string }},
    'driver' = 'org.postgresql.Driver',
    'lookup.cache' = 'PARTIAL',
    'lookup.partial-cache.max-rows' = '{{ cfg.lookup_cache_rows }}',
    'lookup.partial-cache.expire-after-write' = '{{ cfg.lookup_cache_ttl_seconds }} s',
    'lookup.partial-cache.cache-missing-key' = 'true'
);
