-- The original's code/source/users.sql (Flink 1.17), ported to Flink 2.0 for the benchmark's
-- baseline (bench/original/README.md): renamed, values from the project's settings. No lookup
-- cache, as in the original: every checkout queries Postgres.
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
    'driver' = 'org.postgresql.Driver'
);
