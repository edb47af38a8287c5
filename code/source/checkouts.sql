{% from "source/_kafka_raw.sql" import kafka_raw_source with context %}
-- Checkout events: {"checkout_id", "user_id", "product_id", "payment_method", "total_amount",
-- "shipping_address", "billing_address", "user_agent", "ip_address", "datetime_occured"}
{{ kafka_raw_source('checkouts_raw', cfg.checkouts_topic, cfg.checkouts_startup_offsets) }}
