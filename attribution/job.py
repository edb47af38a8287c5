"""Submitting, finding, waiting for and cancelling the job through the Flink REST API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from attribution.config import PROJECT_ROOT, Settings

DRIVER = PROJECT_ROOT / "code" / "checkout_attribution.py"
ACTIVE_STATES = {"INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "RECONCILING", "CANCELLING", "FAILING"}


class JobError(RuntimeError):
    """The job could not be submitted or did not reach the expected state."""


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    name: str
    state: str
    vertex_states: tuple[str, ...]

    @property
    def fully_running(self) -> bool:
        return self.state == "RUNNING" and all(s == "RUNNING" for s in self.vertex_states)


def rest_get(settings: Settings, path: str) -> dict:
    response = requests.get(f"{settings.flink_rest_url}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def job_status(settings: Settings, job_id: str) -> JobStatus:
    details = rest_get(settings, f"/jobs/{job_id}")
    return JobStatus(
        job_id=job_id,
        name=details["name"],
        state=details["state"],
        vertex_states=tuple(v["status"] for v in details.get("vertices", [])),
    )


def active_jobs(settings: Settings, name: str | None = None) -> list[JobStatus]:
    """Jobs that are not finished, optionally only those with this name."""
    overview = rest_get(settings, "/jobs/overview")["jobs"]
    return [
        JobStatus(job["jid"], job["name"], job["state"], ())
        for job in overview
        if job["state"] in ACTIVE_STATES and (name is None or job["name"] == name)
    ]


def wait_until_running(settings: Settings, job_id: str, timeout: float = 180.0) -> JobStatus:
    """Polls until the job and all its tasks are RUNNING; fails fast if the job fails."""
    deadline = time.monotonic() + timeout
    status = job_status(settings, job_id)
    while time.monotonic() < deadline:
        status = job_status(settings, job_id)
        if status.fully_running:
            return status
        if status.state in {"FAILED", "CANCELED", "FINISHED"}:
            raise JobError(f"job {job_id} is {status.state}: {root_exception(settings, job_id)}")
        time.sleep(0.5)
    raise JobError(f"job {job_id} not running after {timeout:.0f}s (state {status.state})")


def exception_history(settings: Settings, job_id: str) -> list[dict]:
    """Failures the job went through (each one a restart), newest first."""
    return rest_get(settings, f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])


def root_exception(settings: Settings, job_id: str) -> str:
    try:
        history = exception_history(settings, job_id)
    except requests.RequestException as error:
        return f"(exceptions unavailable: {error})"
    if history:
        return history[0].get("stacktrace", "").split("\n")[0]
    return "(no exception recorded)"


def submit(
    settings: Settings,
    env: dict[str, str] | None = None,
    savepoint: str | None = None,
    insert_templates: tuple[str, ...] = (),
) -> str:
    """Runs the driver in its own process (it starts a JVM) and returns the new job's id. The
    client JVM gets the cluster's lib directory, so it plans with the same connector and UDF jars."""
    from attribution.deps import client_env

    env = {**(env if env is not None else os.environ), **client_env(settings)}
    argv = [sys.executable, str(DRIVER)]
    if savepoint:
        argv += ["--savepoint", savepoint]
    for template in insert_templates:
        argv += ["--insert-template", template]
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise JobError(f"job submission failed:\n{result.stderr[-4000:]}")
    return result.stdout.strip().splitlines()[-1]


def wait_until_ended(settings: Settings, job_id: str, timeout: float = 60.0) -> str:
    """Polls until the job is CANCELED, FAILED or FINISHED; returns that state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_status(settings, job_id).state
        if state in {"CANCELED", "FAILED", "FINISHED"}:
            return state
        time.sleep(0.3)
    raise JobError(f"job {job_id} did not end within {timeout:.0f}s")


def cancel(settings: Settings, job_id: str, timeout: float = 60.0) -> None:
    requests.patch(f"{settings.flink_rest_url}/jobs/{job_id}?mode=cancel", timeout=10).raise_for_status()
    wait_until_ended(settings, job_id, timeout)


def vertex_metric(settings: Settings, job_id: str, vertex_name_part: str, metric: str) -> float:
    """Sum of a task metric (e.g. numRecordsIn) over the vertices whose name contains a string."""
    details = rest_get(settings, f"/jobs/{job_id}")
    total = 0.0
    for vertex in details["vertices"]:
        if vertex_name_part in vertex["name"]:
            total += float(vertex["metrics"].get(metric, 0))
    return total


def vertex_watermark(settings: Settings, job_id: str, vertex_name_part: str) -> float:
    """The lowest current input watermark (epoch ms) over the subtasks of the vertices whose name
    contains a string; -inf while any of them has none yet."""
    details = rest_get(settings, f"/jobs/{job_id}")
    lowest = float("inf")
    for vertex in details["vertices"]:
        if vertex_name_part in vertex["name"]:
            for entry in rest_get(settings, f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks"):
                lowest = min(lowest, float(entry["value"]))
    return float("-inf") if lowest in (float("inf"), -(2**63)) else lowest


# --- savepoints and restoring ---------------------------------------------------------------
def stop_with_savepoint(settings: Settings, job_id: str, drain: bool = False, timeout: float = 120.0) -> str:
    """Stops the job after a savepoint into STACK_DIR/savepoints; returns the savepoint's path.
    Without drain, results still waiting for event time stay in the savepoint and follow on
    resume; with drain, event time jumps to the end first, so they are written now."""
    target = (settings.stack_path / "savepoints").as_uri()
    response = requests.post(
        f"{settings.flink_rest_url}/jobs/{job_id}/stop",
        json={"targetDirectory": target, "drain": drain},
        timeout=10,
    )
    response.raise_for_status()
    trigger = response.json()["request-id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rest_get(settings, f"/jobs/{job_id}/savepoints/{trigger}")
        if status["status"]["id"] == "COMPLETED":
            operation = status["operation"]
            if "failure-cause" in operation:
                raise JobError(
                    f"savepoint failed: {operation['failure-cause'].get('stack-trace', '')[:2000]}"
                )
            return operation["location"]
        time.sleep(0.5)
    raise JobError(f"savepoint of job {job_id} not finished after {timeout:.0f}s")


@dataclass(frozen=True)
class RestorePoint:
    path: str  # directory holding _metadata
    job_id: str | None  # the job that wrote it (checkpoints only)


def latest_restore_point(settings: Settings, job_id: str | None = None) -> RestorePoint | None:
    """The newest complete retained checkpoint or savepoint (optionally of one job)."""
    candidates = []
    checkpoints = settings.stack_path / "checkpoints"
    pattern = f"{job_id}/chk-*/_metadata" if job_id else "*/chk-*/_metadata"
    for metadata in checkpoints.glob(pattern):
        candidates.append(
            (metadata.stat().st_mtime, RestorePoint(str(metadata.parent), metadata.parent.parent.name))
        )
    if job_id is None:
        for metadata in (settings.stack_path / "savepoints").glob("*/_metadata"):
            candidates.append((metadata.stat().st_mtime, RestorePoint(str(metadata.parent), None)))
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def safe_restore_point(settings: Settings, explicit: str | None, broker_started: float | None) -> str | None:
    """The checkpoint/savepoint to resume from, or None to start without state.

    `broker_started` is when the running broker started (`stack.broker_started_at`). The embedded
    broker keeps topics in memory. State written before the broker (re)started holds
    offsets into topics that no longer exist, and resuming from them could skip the first events
    of the new topics. Such state is therefore not restored: the job starts fresh, reading the new
    topics from the beginning. (`make down` and a broker restart under `make up` drain the job
    first, so results that were waiting for event time are written before the state is left.)
    """
    if explicit:
        return explicit
    point = latest_restore_point(settings)
    if point is None:
        return None
    written = (Path(point.path) / "_metadata").stat().st_mtime
    if broker_started is not None and broker_started > written:
        print(
            f"NOTE: not resuming {point.path}: it predates the broker's restart, whose topics started "
            "empty. Starting fresh; clicks from before the restart cannot attribute new checkouts."
        )
        return None
    return point.path
