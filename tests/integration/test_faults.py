"""Faults while events keep flowing. Each test kills a process with SIGKILL, or freezes one
(SIGSTOP for a while, as a long GC pause or a hung host does) or cuts Postgres off (packets
dropped, connections left half-open) for a while, and then only waits: supervisord restarts the
process, Flink or the keeper brings the job back, nothing is restarted by hand. Afterwards the
table must equal the reference exactly: no missing checkout, no duplicate row, no attribution
that differs from the rule.

Each test sends the first half of a generated workload, waits for a checkpoint that covers some
output, kills, sends the second half, lets event time pass everything, and compares.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import psutil
import pytest
import requests

from attribution import job, keeper, services, supervision
from attribution.config import JDBC_CONNECT_TIMEOUT_SECONDS, PROJECT_ROOT, Settings
from tests.integration.harness import (
    ONE_MODEL_PER_SHAPE,
    PipelineRun,
    Workload,
    assert_models_exact,
    diff,
    pipeline,
    poll,
    row_count,
    wait_for_rows,
    workload,
)
from tests.reference import Attribution, attribute

pytestmark = pytest.mark.integration
MARKER_USER = 999_999_998
RECOVERY_SECONDS = 120  # the promise: RUNNING again within 2 minutes, with no one typing anything


def first_half_checkpointed(run: PipelineRun, load: Workload, rng: random.Random) -> list[tuple[str, dict]]:
    half = len(load.events) // 2
    run.send_all(load.events[:half], rng)
    poll(lambda: row_count(run.settings, list(load.expected)) > 50, 90, "rows from the first half")
    run.wait_for_new_checkpoint()
    return load.events[half:]


def assert_exact(run: PipelineRun, load: Workload) -> None:
    """Every enabled model's table (the test stack enables all three) equals the reference."""
    run.flush_through(load.last_event_time + timedelta(minutes=1), MARKER_USER)
    assert_models_exact(run.settings, load)


def kill(settings: Settings, service: str) -> float:
    """SIGKILL to the service's main process, as a crash would; returns when it happened."""
    pid = supervision.running_pid(settings, service)
    assert pid, f"{service} is not running"
    os.kill(pid, signal.SIGKILL)
    return time.monotonic()


@contextlib.contextmanager
def frozen(settings: Settings, service: str) -> Iterator[None]:
    """The service stopped (SIGSTOP) inside the block, its main process and every child (Postgres
    serves each connection from a process of its own), as on a hung host: sockets stay open and
    nothing answers on them. SIGCONT ends the fault, as the end of a long GC pause does."""
    pid = supervision.running_pid(settings, service)
    assert pid, f"{service} is not running"
    main = psutil.Process(pid)
    processes = [main, *main.children(recursive=True)]
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def postgres_cut_off(settings: Settings) -> Iterator[None]:
    """Every packet to and from the Postgres port dropped inside the block (not refused: open
    connections stay half-open), by a loopback firewall rule the test always removes."""
    iptables = shutil.which("iptables")
    if iptables is None or os.geteuid() != 0:
        pytest.skip("needs iptables and root (.ci/run installs iptables; CI runs as root)")
    port = str(settings.postgres_port)
    rules = [["-p", "tcp", "-i", "lo", "--dport", port, "-j", "DROP"],
             ["-p", "tcp", "-i", "lo", "--sport", port, "-j", "DROP"]]  # fmt: skip
    for rule in rules:
        subprocess.run([iptables, "-I", "INPUT", *rule], check=True)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run([iptables, "-D", "INPUT", *rule], check=False)


def hold(seconds: float) -> None:
    """Lets a fault last (what is tested is how long it lasted, not what happened meanwhile)."""
    time.sleep(seconds)


def past_the_jdbc_timeouts(settings: Settings) -> float:
    """A Postgres fault this long outlasts both JDBC timeouts (connect and socket) of a call
    blocked from its start: such a call is ended by its timeout, not by the fault's end."""
    return max(JDBC_CONNECT_TIMEOUT_SECONDS, settings.postgres_socket_timeout_seconds) + 8


def running_again(run: PipelineRun, old_job_id: str | None = None) -> bool:
    """The run's job (the same one, or a new one other than old_job_id) with every task RUNNING;
    False while the cluster does not answer (a JobManager starting)."""
    try:
        job_id = run.current_job_id()
        return job_id not in {None, old_job_id} and job.job_status(run.settings, job_id).fully_running
    except requests.RequestException:
        return False


def flink_restored(run: PipelineRun) -> str | None:
    """The checkpoint or savepoint the run's current job was started from, as Flink reports it
    (None: started without state)."""
    job_id = run.current_job_id()
    assert job_id is not None, "no job"
    restored = job.rest_get(run.settings, f"/jobs/{job_id}/checkpoints").get("latest", {}).get("restored")
    return None if restored is None else str(restored["external_path"]).removeprefix("file:").rstrip("/")


@contextlib.contextmanager
def taskmanager_log_grows(settings: Settings) -> Iterator[Callable[[], str]]:
    """What the TaskManager's Flink log gains inside the block (its text, read at the call)."""
    logs = sorted((settings.stack_path / "logs").glob("flink--taskexecutor-*.log"))
    sizes = {path: path.stat().st_size for path in logs}

    def grown() -> str:
        text = []
        for path, size in sizes.items():
            with path.open(errors="replace") as log:
                log.seek(size)
                text.append(log.read())
        return "".join(text)

    yield grown


def a_call_timed_out(log: str) -> bool:
    """Whether a JDBC call was ended by its socket or connect timeout (retried by the connector,
    or failing the job), as the TaskManager logs it."""
    return (
        re.search(r"SocketTimeoutException|SocketException: Connection timed out|connect timed out", log)
        is not None
    )


def test_taskmanager_killed_mid_stream(settings: Settings) -> None:
    load = workload(settings, seed=11, count=3000, user_offset=3_000_000, start=datetime(2024, 6, 1, 9))
    rng = random.Random(5)
    with pipeline(settings, "tm-kill", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        killed_at = kill(settings, "taskmanager")
        run.send_all(rest, rng)
        poll(
            lambda: job.exception_history(settings, run.job_id) and running_again(run),
            RECOVERY_SECONDS,
            "the job to restart from its checkpoint on a restarted TaskManager",
        )
        recovery = time.monotonic() - killed_at
        assert run.current_job_id() == run.job_id  # Flink restarted it; nothing resubmitted
        assert_exact(run, load)
    print(f"\nTaskManager SIGKILL: RUNNING again after {recovery:.1f}s; {len(load.expected)} checkouts exact")


def test_jobmanager_killed_and_the_keeper_resubmits_from_the_checkpoint(settings: Settings) -> None:
    load = workload(settings, seed=12, count=3000, user_offset=4_000_000, start=datetime(2024, 6, 2, 9))
    rng = random.Random(6)
    with pipeline(settings, "jm-kill", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        killed_at = kill(settings, "jobmanager")
        run.send_all(rest, rng)
        poll(lambda: running_again(run, run.job_id), RECOVERY_SECONDS, "the keeper to resubmit the job")
        recovery = time.monotonic() - killed_at
        recorded(run)
        restored_from = intent_of(settings).restore_from
        assert restored_from and run.job_id in restored_from, restored_from  # its own checkpoint
        assert flink_restored(run) == restored_from.removeprefix("file:").rstrip("/")  # as Flink has it
        assert_exact(run, load)
    print(f"\nJobManager SIGKILL: RUNNING again after {recovery:.1f}s from {restored_from}; exact")


def test_postgres_killed_mid_stream(settings: Settings) -> None:
    load = workload(settings, seed=13, count=3000, user_offset=5_000_000, start=datetime(2024, 6, 3, 9))
    rng = random.Random(7)
    with pipeline(settings, "pg-kill", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        killed_at = kill(settings, "postgres")
        run.send_all(rest, rng)
        poll(
            lambda: services.postgres_accepts(settings) and running_again(run),
            RECOVERY_SECONDS,
            "Postgres back and the job running",
        )
        recovery = time.monotonic() - killed_at
        assert_exact(run, load)
        assert job.job_status(settings, run.job_id).state == "RUNNING"
    print(f"\nPostgres SIGKILL: accepting and job RUNNING after {recovery:.1f}s; exact afterwards")


def test_postgres_frozen_longer_than_the_jdbc_timeouts(settings: Settings) -> None:
    """Lookups and writes time out (POSTGRES_SOCKET_TIMEOUT_SECONDS), the job restarts until Postgres answers
    again, and then every table equals the reference."""
    load = workload(settings, seed=16, count=3000, user_offset=7_500_000, start=datetime(2024, 6, 8, 9))
    rng = random.Random(10)
    with pipeline(settings, "pg-freeze", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        with taskmanager_log_grows(settings) as grown, frozen(settings, "postgres"):
            run.send_all(rest, rng)
            hold(past_the_jdbc_timeouts(settings))
        poll(lambda: running_again(run), RECOVERY_SECONDS, "the job running once Postgres answers")
        assert a_call_timed_out(grown()), "no JDBC call timed out: the timeouts did not end them"
        assert_exact(run, load)


def test_taskmanager_frozen_longer_than_the_heartbeat_timeout(settings: Settings) -> None:
    """The JobManager declares the frozen TaskManager lost (heartbeat timeout 20 s) and restarts
    the job from its checkpoint on the TaskManager once it answers again."""
    load = workload(settings, seed=17, count=3000, user_offset=7_600_000, start=datetime(2024, 6, 9, 9))
    rng = random.Random(11)
    with pipeline(settings, "tm-freeze", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        with frozen(settings, "taskmanager"):
            run.send_all(rest, rng)
            hold(25)
        poll(
            lambda: job.exception_history(settings, run.job_id) and running_again(run),
            RECOVERY_SECONDS,
            "the job restarted from its checkpoint",
        )
        assert_exact(run, load)


def test_flink_cut_off_from_postgres(settings: Settings) -> None:
    """Half-open connections: the JDBC socket timeout ends each blocked call instead of TCP's
    retransmissions (minutes); the job restarts until the network is back, then is exact."""
    load = workload(settings, seed=18, count=3000, user_offset=7_700_000, start=datetime(2024, 6, 10, 9))
    rng = random.Random(12)
    with pipeline(settings, "pg-cut", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        with taskmanager_log_grows(settings) as grown, postgres_cut_off(settings):
            run.send_all(rest, rng)
            hold(past_the_jdbc_timeouts(settings))
        poll(lambda: running_again(run), RECOVERY_SECONDS, "the job running once the network is back")
        assert a_call_timed_out(grown()), "no JDBC call timed out: the timeouts did not end them"
        assert_exact(run, load)


def test_broker_killed_the_keeper_drains_and_starts_fresh_on_the_new_broker(settings: Settings) -> None:
    """The embedded broker keeps topics in memory, so its restart empties them. The keeper drains
    the job that read the old broker (results waiting for event time are written), creates the
    topics again and starts the job without the old offsets. Every checkout consumed before and
    sent after the restart is written; clicks from before the restart no longer attribute
    checkouts after it (they are gone with the old broker)."""
    load = workload(settings, seed=14, count=3000, user_offset=6_000_000, start=datetime(2024, 6, 4, 9))
    rng = random.Random(8)
    half = len(load.events) // 2
    before, after = load.events[:half], load.events[half:]
    with pipeline(settings, "broker-kill", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        run.send_all(before, rng)
        run.flush_through(max_time(before), MARKER_USER)  # all of it consumed before the broker goes
        killed_at = kill(settings, "broker")
        poll(lambda: running_again(run, run.job_id), RECOVERY_SECONDS, "the job restarted on the new broker")
        recovery = time.monotonic() - killed_at
        recorded(run)
        intent = intent_of(settings)
        assert intent.restore_from is None, intent  # no offsets of the old broker
        run.writer.close()
        run.writer = type(run.writer)(run.settings)  # the old producer's connection died with the broker
        run.send_all(after, rng)
        run.flush_through(load.last_event_time + timedelta(minutes=1), MARKER_USER)

        expected = {**reference_of(before, load.users), **reference_of(after, load.users)}
        actual = wait_for_rows(settings, expected)
        assert actual == expected, diff(expected, actual)
    print(f"\nBroker SIGKILL: job fresh on the new broker after {recovery:.1f}s; exact")


def test_stop_with_savepoint_and_resume_is_exact(settings: Settings) -> None:
    """`make stop-job` then `make job` on the same broker: state and offsets resume exactly, with
    events produced while the job was stopped."""
    load = workload(settings, seed=15, count=3000, user_offset=7_000_000, start=datetime(2024, 6, 5, 9))
    rng = random.Random(9)
    with pipeline(settings, "savepoint", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        rest = first_half_checkpointed(run, load, rng)
        cli(run.settings, "stop-job")
        run.send_all(rest, rng)
        cli(run.settings, "job")
        restored_from = intent_of(settings).restore_from or ""
        assert "savepoint" in restored_from
        assert flink_restored(run) == restored_from.removeprefix("file:").rstrip("/")
        assert_exact(run, load)


def test_a_job_the_user_stopped_stays_stopped(settings: Settings) -> None:
    with pipeline(settings, "user-stop", kept=True, models=ONE_MODEL_PER_SHAPE) as run:
        cli(run.settings, "stop-job")
        keeper_looked_twice(settings)
        assert run.current_job_id() is None
        assert intent_of(settings).state == keeper.STOPPED

        cli(run.settings, "job")
        restarted = run.current_job_id()
        assert restarted is not None
        job.cancel(settings, restarted)  # as the web UI's Cancel does: no make target involved
        keeper_looked_twice(settings)
        assert run.current_job_id() is None
        assert intent_of(settings).state == keeper.STOPPED


def recorded(run: PipelineRun) -> None:
    """Until the keeper has recorded the job now running: the job can be RUNNING a moment before
    the keeper's submission returns and writes the intent."""
    poll(lambda: intent_of(run.settings).job_id == run.current_job_id(), 60, "the keeper to record the job")


def intent_of(settings: Settings) -> keeper.Intent:
    intent = keeper.read_intent(settings)
    assert intent is not None, "no job intent recorded"
    return intent


def keeper_looked_twice(settings: Settings) -> None:
    """Returns once the keeper has finished two more rounds than it had now."""
    loops = keeper.read_status(settings).get("loops", 0)
    poll(lambda: keeper.read_status(settings).get("loops", 0) >= loops + 2, 30, "two rounds of the keeper")


def cli(settings: Settings, *args: str) -> str:
    """The CLI behind the Makefile (`make job`, `make stop-job`, ...) with these settings."""
    result = subprocess.run(
        [sys.executable, "-m", "attribution", *args],
        env={**os.environ, **settings.to_env()},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def reference_of(events: list[tuple[str, dict]], users: dict[int, str]) -> dict[str, Attribution]:
    return attribute(
        [e for t, e in events if t == "clicks"], [e for t, e in events if t == "checkouts"], users
    )


def max_time(events: list[tuple[str, dict]]) -> datetime:
    return max(datetime.strptime(e["datetime_occured"], "%Y-%m-%d %H:%M:%S.%f") for _, e in events)
