"""`make status`: one document (attribution/status.py), as text for people and as JSON for scripts
(docs/operations.md, "Status for scripts")."""

import json
from decimal import Decimal

from attribution import status

DOCUMENT = {
    "services": [
        {"name": "broker", "state": "RUNNING", "pid": 101, "restarts": 0},
        {"name": "datagen", "state": "STOPPED", "pid": None, "restarts": 2},
    ],
    "keeper": {"job_should_be": "RUNNING", "note": None, "last_action": "resubmitted as abc"},
    "jobs": [
        {
            "name": "checkout-attribution",
            "state": "RUNNING",
            "job_id": "abc",
            "checkouts": 1234.0,
            "checkouts_per_second": 10.0,
            "unknown_user": 4.0,
            "unattributed": 234.0,
            "latency_seconds": {"0.5": 0.25, "0.99": 1.5},
            "late_events": {"checkouts": 1.0},
            "malformed_records": {},
            "event_time_lag_seconds": 3.21,
            "restarts": {
                "recent": 1,
                "window_minutes": 5,
                "total": 2,
                "last_cause": "java.net.SocketTimeoutException: Read timed out",
                "last_cause_seconds_ago": 42.0,
            },
            "consumer_lag_records": 12345.0,
            "last_checkpoint": {
                "id": 7,
                "seconds_ago": 3.0,
                "state_size_bytes": 3 * 2**20,
                "duration_ms": 120,
                "failed_total": 0,
                "failed_recent": 0,
            },
        }
    ],
    "postgres": {
        "reachable": True,
        "results": {
            "table": "results.first_click",
            "rows": 1200,
            "attributed": 1000,
            "with_user_name": 1190,
        },
        "models": [
            {
                "model": "first_click",
                "checkouts": 1200,
                "attributed_checkouts": 1000,
                "attributed_share": Decimal("0.8333"),
                "attributed_revenue": Decimal("12345.67"),
                "avg_minutes_click_to_checkout": Decimal("31.2"),
                "clicks_credited_per_checkout": Decimal("1"),
            },
            {
                "model": "linear",
                "checkouts": None,
                "attributed_checkouts": 900,
                "attributed_share": None,
                "attributed_revenue": Decimal("11000.00"),
                "avg_minutes_click_to_checkout": Decimal("20.5"),
                "clicks_credited_per_checkout": Decimal("2.25"),
            },
        ],
        "dead_letters": {
            "table": "commerce.dead_letters",
            "total": 3,
            "last_minute": 0,
            "per_minute_before": 0.3,
        },
    },
    "problems": ["a restart loop"],
}


def test_the_text_is_what_make_status_prints() -> None:
    assert status.text(DOCUMENT) == [
        "  broker       RUNNING (pid 101)      restarted 0x after dying",
        "  datagen      STOPPED                restarted 2x after dying",
        "  keeper: job should be RUNNING",
        "          last action: resubmitted as abc",
        "  job checkout-attribution: RUNNING (abc)",
        "    checkouts: 1234 (10/s), unknown user 4",
        "    attributed: 1000 (81.0 %), unattributed 234",
        "    end-to-end latency (datetime_occured to sink, last 10,000 rows): p50 0.25 s, p99 1.50 s",
        "    late events: checkouts 1",
        "    malformed: none",
        "    event-time lag (now - watermark into the join): 3.2 s",
        "    restarts: 1 in the last 5 min, 2 in all; last cause (42 s ago): "
        "java.net.SocketTimeoutException: Read timed out",
        "    consumer lag: 12,345 records",
        "    last checkpoint: #7 3 s ago, 3.0 MiB, 120 ms; failed 0 (0 in the last 5 min)",
        "  results.first_click: 1200 rows, 1000 attributed, 1190 with user_name",
        "  first_click: 83.3% of 1,200 checkouts attributed, revenue 12,345.67, "
        "click 31.2 min before checkout",
        "  linear: 900 checkouts attributed (a share needs first_click or last_click), revenue 11,000.00, "
        "touches 20.5 min before checkout, 2.25 clicks share each",
        "  commerce.dead_letters: 3 rows, 0 in the last minute (0.3/min in the ten before)",
        "  PROBLEMS (need a human):",
        "  ! a restart loop",
    ]


def test_an_unreachable_database_and_no_problems_read_as_such() -> None:
    quiet = {
        **DOCUMENT,
        "jobs": [],
        "postgres": {"reachable": False, "error": "OperationalError"},
        "problems": [],
    }
    assert status.text(quiet)[-2:] == ["  postgres: not reachable (OperationalError)", "  problems: none"]


def test_the_json_document_keeps_every_figure_as_a_number() -> None:
    parsed = json.loads(json.dumps(DOCUMENT, default=status.as_json))
    assert set(parsed) == {"services", "keeper", "jobs", "postgres", "problems"}
    assert parsed["postgres"]["models"][0]["attributed_share"] == 0.8333
    assert parsed["jobs"][0]["restarts"]["recent"] == 1
