{% from "process/_validation.sql" import dead_letter_columns with context %}
-- Every rejected record, with where it came from and why. Keyed by (topic, partition, offset),
-- so a replay after recovery rewrites the same rows instead of adding new ones.
INSERT INTO dead_letters
SELECT {{ dead_letter_columns("COUNTED(reject_reason, 'malformed_records', 'reason')") }}
FROM clicks_checked
WHERE reject_reason IS NOT NULL
UNION ALL
SELECT {{ dead_letter_columns("COUNTED(reject_reason, 'malformed_records', 'reason')") }}
FROM checkouts_checked
WHERE reject_reason IS NOT NULL
