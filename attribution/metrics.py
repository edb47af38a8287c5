"""The job's metrics as Prometheus sees them: read from the Flink reporter endpoints.

Business counters come from the COUNTED function (code/functions/metrics.sql): a counter
`attribution.<label>.<metric>` is exported as
`flink_taskmanager_job_task_operator_attribution_<label>_<metric>{<label>="..."}`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import requests
from prometheus_client.parser import text_string_to_metric_families

from attribution.config import Settings

BUSINESS_PREFIX = "flink_taskmanager_job_task_operator_attribution_"
# The label of each business counter (see code/process/metrics.sql).
BUSINESS_LABELS = {
    "checkouts": "user",
    "checkouts_unattributed": "user",
    "late_events": "topic",
    "malformed_records": "reason",
}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(settings: Settings) -> list[Sample]:
    """Every sample of every reporter endpoint that answers (JobManager and TaskManagers)."""
    samples: list[Sample] = []
    for port in settings.metrics_ports:
        try:
            text = requests.get(f"http://{settings.flink_rest_host}:{port}/metrics", timeout=2).text
        except requests.RequestException:
            continue
        for family in text_string_to_metric_families(text):
            samples.extend(Sample(s.name, s.labels, s.value) for s in family.samples)
    return samples


def business_counts(samples: list[Sample], job_id: str) -> dict[str, dict[str, float]]:
    """{metric: {label value: total over subtasks}} of one job's business counters."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for sample in samples:
        if not sample.name.startswith(BUSINESS_PREFIX) or sample.labels.get("job_id") != job_id:
            continue
        for metric, label in BUSINESS_LABELS.items():
            if sample.name == f"{BUSINESS_PREFIX}{label}_{metric}":
                counts[metric][sample.labels.get(label, "")] += sample.value
    return {metric: dict(values) for metric, values in counts.items()}


LATENCY = BUSINESS_PREFIX + "checkout_latency_ms"


def latency_quantiles(samples: list[Sample], job_id: str) -> dict[str, float]:
    """{quantile: ms} of the end-to-end latency histogram, the worst subtask's for each quantile."""
    worst: dict[str, float] = {}
    for sample in samples:
        if sample.name == LATENCY and sample.labels.get("job_id") == job_id and "quantile" in sample.labels:
            q = sample.labels["quantile"]
            worst[q] = max(worst.get(q, float("-inf")), sample.value)
    return worst


PENDING_RECORDS = "flink_taskmanager_job_task_operator_pendingRecords"


def pending_records(samples: list[Sample], job_id: str) -> float | None:
    """The consumer lag of one job's Kafka sources (FLIP-33 pendingRecords, summed over source
    subtasks); None before any source has fetched (the metric appears with the first fetch)."""
    values = [s.value for s in samples if s.name == PENDING_RECORDS and s.labels.get("job_id") == job_id]
    return sum(values) if values else None
