"""`make replay-dead-letters`: sends chosen dead letters back to the topic they came from, once
their producer (or the setting that rejected them) is fixed.

Each dead letter is sent once: the rows are locked while they are sent, and marked (replayed_at)
in the same transaction once the broker has acknowledged every record. Only if the command dies
between the acknowledgement and the commit is a row sent again by the next run; the job's
writes are idempotent, so that copy changes nothing. Each record sent carries the header
`dead-letter` naming where it was first read (topic/partition/offset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from attribution.config import Settings

HEADER = "dead-letter"


@dataclass(frozen=True)
class Selection:
    """Which dead letters to replay: by reason and by the Kafka timestamp of the original record."""

    reasons: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = ["replayed_at IS NULL"]
        values: list[object] = []
        if self.reasons:
            clauses.append("reason = ANY(%s)")
            values.append(list(self.reasons))
        if self.since:
            clauses.append("kafka_timestamp >= %s")
            values.append(self.since)
        if self.until:
            clauses.append("kafka_timestamp < %s")
            values.append(self.until)
        return " AND ".join(clauses), values


@dataclass(frozen=True)
class Outcome:
    sent: int
    not_replayable: int  # stored cut (payload_too_large) or empty: the original cannot be rebuilt


def replay(settings: Settings, selection: Selection, dry_run: bool = False) -> Outcome:
    import psycopg2
    from kafka import KafkaProducer

    where, values = selection.where()
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT source_topic, source_partition, source_offset, kafka_timestamp, payload, payload_chars"
            f" FROM {settings.dead_letter_table} WHERE {where}"
            " ORDER BY kafka_timestamp, source_topic, source_partition, source_offset"
            " FOR UPDATE SKIP LOCKED",
            values,
        )
        rows = cur.fetchall()
        whole = [r for r in rows if r[4] and r[5] is not None and len(r[4]) == r[5]]
        if dry_run or not whole:
            conn.rollback()
            return Outcome(len(whole), len(rows) - len(whole))
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        try:
            pending = [
                producer.send(
                    topic,
                    value=payload.encode(),
                    headers=[(HEADER, f"{topic}/{partition}/{offset}".encode())],
                )
                for topic, partition, offset, _, payload, _ in whole
            ]
            producer.flush()
            for future in pending:
                future.get(timeout=30)  # raises if the broker did not take it: nothing is marked
        finally:
            producer.close()
        cur.execute(
            f"UPDATE {settings.dead_letter_table} SET replayed_at = clock_timestamp()"
            " WHERE (source_topic, source_partition, source_offset, kafka_timestamp) IN"
            " (SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::timestamp[]))",
            [list(column) for column in zip(*(r[:4] for r in whole), strict=True)],
        )
    conn.close()
    return Outcome(len(whole), len(rows) - len(whole))
