"""What `make status` and the keeper flag as needing a human (attribution/health.py), and how the
keeper retries a submission (attribution/keeper.py): pure decisions, on figures given here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from attribution import health, job, keeper
from attribution.config import Settings
from attribution.health import Checkpoints, DeadLetters, Restarts

SETTINGS = Settings.from_env({})
HEALTHY_CHECKPOINTS = Checkpoints(
    failed_recent=0, failed_total=0, last_failure=None, completed_ago=5, running_for=600, latest_completed={}
)


def flagged(**figures) -> list[str]:
    """The first word of each problem found in these figures (the rest default to healthy)."""
    found = health.problems(
        SETTINGS,
        figures.get("state", "RUNNING"),
        figures.get("restart", Restarts(0, 0, None, None)),
        figures.get("checkpoint", HEALTHY_CHECKPOINTS),
        figures.get("lag", ()),
        figures.get("dead"),
    )
    return [problem.split(":")[0] for problem in found]


def test_a_healthy_job_has_no_problem() -> None:
    assert flagged() == []


def test_one_restart_is_a_healed_crash_two_are_a_loop_and_restarting_is_one_at_once() -> None:
    assert flagged(restart=Restarts(1, 1, "TaskManager lost", 30)) == []
    assert flagged(restart=Restarts(2, 5, "PSQLException: value too long", 3)) == ["restart loop"]
    assert flagged(state="RESTARTING", restart=Restarts(1, 1, "x", 1)) == ["restart loop"]
    assert flagged(state="FAILING") == ["restart loop"]
    [line] = health.problems(SETTINGS, "RUNNING", Restarts(3, 3, "the cause", 1), HEALTHY_CHECKPOINTS)
    assert "3x in the last 5 min" in line and line.endswith("last cause: the cause")


def test_checkpoints_failing_not_the_first_trigger_of_a_new_job() -> None:
    first = Checkpoints(failed_recent=1, failed_total=1, last_failure="not all tasks running",
                        completed_ago=4, running_for=40)  # fmt: skip
    assert flagged(checkpoint=first) == []
    failing = Checkpoints(2, 2, "timeout", completed_ago=20, running_for=600)
    assert flagged(checkpoint=failing) == ["checkpoints failing"]
    # None completed for long while the job runs (hung, with nothing reported failed yet).
    stale_after = 3 * SETTINGS.checkpoint_interval_seconds + 30
    stuck = Checkpoints(0, 0, None, completed_ago=stale_after + 1, running_for=stale_after + 100)
    assert flagged(checkpoint=stuck) == ["checkpoints failing"]
    assert flagged(checkpoint=stuck, state="RESTARTING") == ["restart loop"]


def test_lag_that_grows_over_a_minute_not_a_burst_being_worked_off() -> None:
    t = time.time()
    rising = [(t + i * 10, 500.0 * i) for i in range(10)]
    draining = [(t + i * 10, 50_000.0 - 2_000 * i) for i in range(10)]
    small = [(t + i * 10, 10.0 * i) for i in range(10)]
    too_short = [(t + i * 10, 5_000.0 * i) for i in range(5)]  # 40 s of history
    assert health.lag_growing(rising)
    assert not health.lag_growing(draining)
    assert not health.lag_growing(small)
    assert not health.lag_growing(too_short)
    assert not health.lag_growing([])
    assert flagged(lag=rising) == ["consumer lag growing"]


def test_dead_letters_rising_not_a_steady_trickle() -> None:
    assert flagged(dead=DeadLetters(last_minute=40, per_minute_before=0.5, total=45)) == [
        "dead letters rising"
    ]
    assert flagged(dead=DeadLetters(last_minute=40, per_minute_before=30, total=400)) == []
    assert flagged(dead=DeadLetters(last_minute=5, per_minute_before=0, total=5)) == []


def test_the_keeper_backs_off_exponentially_up_to_five_minutes() -> None:
    waits = [keeper.submission_backoff(n) for n in range(1, 12)]
    assert waits[:4] == [2, 4, 8, 16]
    assert waits[-1] == 300 and waits == sorted(waits)


@pytest.mark.parametrize(
    ("cause", "gives_up"),
    [
        ("job submission failed: java.net.ConnectException: Connection refused", False),
        ("job submission did not finish within 300s", False),
        (
            "job submission failed: org.apache.flink.table.api.ValidationException: SQL validation failed",
            True,
        ),
        ("job submission failed: java.lang.IllegalStateException: Failed to rollback to checkpoint", True),
    ],
)
def test_a_failed_submission_is_retried_unless_it_cannot_succeed(
    tmp_path: Path, cause: str, gives_up: bool
) -> None:
    settings = Settings.from_env({"STACK_DIR": str(tmp_path)})
    intent = keeper.Intent(keeper.RUNNING, settings.to_env(), "old-job", failed_submissions=4)
    keeper.write_intent(settings, intent)
    before = time.time()
    keeper._submission_failed(settings, intent, job.JobError(cause))
    after = keeper.read_intent(settings)
    assert after is not None and after.failed_submissions == 5 and cause in after.note
    if gives_up:
        assert after.state == keeper.FAILED and after.next_submission_at is None
    else:
        assert after.state == keeper.RUNNING
        assert after.next_submission_at is not None
        assert after.next_submission_at - before == pytest.approx(keeper.submission_backoff(5), abs=1)


def test_the_last_cause_is_the_innermost_one_not_a_repeated_reference() -> None:
    trace = "\n".join(
        [
            "java.io.IOException: java.sql.BatchUpdateException: Batch entry 0 INSERT ...",
            "\tat org.apache.flink.connector.jdbc.internal.JdbcOutputFormat.flush(JdbcOutputFormat.java:1)",
            "\tSuppressed: java.lang.RuntimeException: Writing records to JDBC failed.",
            "\t\tCaused by: [CIRCULAR REFERENCE: java.io.IOException: java.sql.BatchUpdateException: ...]",
            "Caused by: java.sql.BatchUpdateException: Batch entry 0 INSERT ...",
            "Caused by: org.postgresql.util.PSQLException: ERROR: new row violates check constraint",
            "\tat org.postgresql.core.v3.QueryExecutorImpl.receiveErrorResponse(QueryExecutorImpl.java:1)",
            "\tSuppressed: java.lang.RuntimeException: Writing records to JDBC failed.",
            "\t\tCaused by: [CIRCULAR REFERENCE: java.io.IOException: java.sql.BatchUpdateException: ...]",
        ]
    )
    assert (
        job.root_cause(trace) == "org.postgresql.util.PSQLException: ERROR: new row violates check constraint"
    )


def test_a_failure_met_again_in_the_chain_is_followed_to_where_it_was_printed() -> None:
    """A sink's close() adds the failure it already threw as a suppressed exception; Java then
    prints the chain's end as a circular reference, and the causes are where it was printed."""
    trace = "\n".join(
        [
            "org.apache.flink.util.FlinkRuntimeException: the task failed",
            "\tSuppressed: java.io.IOException: java.sql.BatchUpdateException: Batch entry 0 INSERT ...",
            "\t\tat org.apache.flink.connector.jdbc.internal.JdbcOutputFormat.flush(JdbcOutputFormat.java:1)",
            "\tCaused by: java.sql.BatchUpdateException: Batch entry 0 INSERT ...",
            "\tCaused by: org.postgresql.util.PSQLException: ERROR: value too long",
            "Caused by: java.lang.RuntimeException: Writing records to JDBC failed.",
            "Caused by: [CIRCULAR REFERENCE: java.io.IOException: java.sql.BatchUpdateException: Batch]",
        ]
    )
    assert job.root_cause(trace) == "org.postgresql.util.PSQLException: ERROR: value too long"
    # A reference back to the chain itself ends it: its innermost cause is the last one before.
    assert job.root_cause("x: top\nCaused by: a: b\nCaused by: [CIRCULAR REFERENCE: x: top]") == "a: b"
