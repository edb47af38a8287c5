"""The schema in Postgres and the topics in Kafka: created by `make up` and the keeper in the
embedded stack, and by `python -m attribution init` in Compose."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from attribution.config import ROLES, Settings, schema_of
from attribution.templates import render_file


def schema_sql(settings: Settings) -> str:
    """postgres/init.sql rendered with the configured table names."""
    tables = (
        settings.users_table,
        settings.products_table,
        *settings.model_written_tables,
        *settings.model_views,
        settings.dead_letter_table,
    )
    schemas = sorted({schema_of(table) for table in tables if "." in table})
    roles = {kind: (name, settings.role_password(kind)) for kind, name in ROLES.items()}
    return render_file("postgres/init.sql", cfg=settings, schemas=schemas, roles=roles)


def apply_schema(settings: Settings) -> None:
    import psycopg2

    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(schema_sql(settings))
    conn.close()


def create_topics(
    settings: Settings, topics: Sequence[str] | None = None, partitions: int | None = None
) -> list[str]:
    """Creates the topics that do not exist yet; returns those it created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    topics = list(topics or (settings.clicks_topic, settings.checkouts_topic))
    partitions = partitions or settings.topic_partitions
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="stack-admin")
    created = []
    try:
        existing = set(admin.list_topics())
        for topic in topics:
            if topic in existing:
                continue
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
                created.append(topic)
    finally:
        admin.close()
    return created


def delete_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Deletes topics (and their data: the embedded broker holds every topic in memory)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import UnknownTopicOrPartitionError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="stack-admin")
    try:
        with contextlib.suppress(UnknownTopicOrPartitionError):
            admin.delete_topics(list(topics))
    finally:
        admin.close()
