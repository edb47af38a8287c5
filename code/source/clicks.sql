{% from "source/_kafka_raw.sql" import kafka_raw_source with context %}
-- Click events: {"click_id", "user_id", "product_id", "product", "price", "url", "user_agent",
-- "ip_address", "datetime_occured": "YYYY-MM-DD HH:MM:SS.fff"}
{{ kafka_raw_source('clicks_raw', cfg.clicks_topic, cfg.clicks_startup_offsets) }}
