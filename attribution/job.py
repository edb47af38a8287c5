"""Submitting, finding, waiting for and cancelling the job through the Flink REST API."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from attribution.config import Settings

log = logging.getLogger(__name__)

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
    while True:
        status = job_status(settings, job_id)
        if status.fully_running:
            return status
        if status.state in {"FAILED", "CANCELED", "FINISHED"}:
            raise JobError(f"job {job_id} is {status.state}: {root_exception(settings, job_id)}")
        if time.monotonic() > deadline:
            raise JobError(f"job {job_id} not running after {timeout:.0f}s (state {status.state})")
        time.sleep(0.5)


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
    savepoint: str | None = None,
    output_sql: tuple[Path, ...] = (),
    timeout: float = 300.0,
) -> str:
    """Submits the job (attribution/pipeline.py) from a process of its own (PyFlink starts a JVM)
    with these settings, and returns the id PyFlink gave the new job. The client JVM gets the
    cluster's lib directory, so it plans with the same connector and UDF jars."""
    from attribution.deps import client_env

    env = {**os.environ, **settings.to_env(), **client_env(settings)}
    with tempfile.TemporaryDirectory(prefix="submit-") as scratch:
        job_id_file = Path(scratch) / "job-id"
        argv = [sys.executable, "-m", "attribution.pipeline", "--job-id-file", str(job_id_file)]
        if savepoint:
            argv += ["--savepoint", savepoint]
        for path in output_sql:
            argv += ["--output-sql", str(path)]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise JobError(f"job submission did not finish within {timeout:.0f}s") from None
        if result.returncode != 0 or not job_id_file.is_file():
            raise JobError(f"job submission failed: {root_cause(result.stderr)}")
        return job_id_file.read_text().strip()


def root_cause(text: str) -> str:
    """The most telling line of a Java failure as Python sees it: the innermost cause of the
    exception's own chain, else the first exception line (py4j puts it after a line of its own),
    else the last line."""
    lines = text.splitlines()
    cause = _innermost_cause(lines, 0, "", set())
    if cause:
        return cause[:1000]
    stripped = [line.strip().removeprefix(": ") for line in lines if line.strip()]
    exceptions = [line for line in stripped if re.match(r"[\w.$]+(Exception|Error)\b", line)]
    return (exceptions[:1] or stripped[-1:] or ["(no output)"])[0][:1000]


def _innermost_cause(lines: list[str], start: int, indent: str, seen: set[int]) -> str | None:
    """The last 'Caused by' of the chain printed at this indentation from line `start` on. Java
    prints an exception met before as '[CIRCULAR REFERENCE: ...]' (a sink's close() adds the
    failure it already threw as a suppressed one): that chain goes on where it was first printed."""
    last = None
    for line in lines[start:]:
        body = line.lstrip()
        if body.startswith(("Caused by: ", "Suppressed: ")) and len(line) - len(body) < len(indent):
            break  # the enclosing exception's next block: this chain has ended
        if not line.startswith(indent + "Caused by: "):
            continue
        cause = line[len(indent) + len("Caused by: ") :].strip()
        if not cause.startswith("[CIRCULAR REFERENCE: "):
            last = cause
            continue
        target = cause.removeprefix("[CIRCULAR REFERENCE: ").rstrip("]")[:200]
        for index, earlier in enumerate(lines):
            caption = earlier.lstrip()
            printed = caption.removeprefix("Suppressed: ").removeprefix("Caused by: ")
            if printed.startswith(target) and index not in seen:
                seen.add(index)
                depth = earlier[: len(earlier) - len(caption)]
                return _innermost_cause(lines, index + 1, depth, seen) or printed
        break
    return last


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


def newest_restore_point(settings: Settings, job_id: str | None, savepoint: str | None = None) -> str | None:
    """The newest complete one of: the retained checkpoints of job `job_id`, and `savepoint`.
    Only a job's own lineage: the directory also holds other jobs' checkpoints (tests,
    benchmarks), whose state would not fit."""
    candidates = []
    checkpoints = settings.checkpoint_path  # None: not a local directory (s3://...)
    if checkpoints is not None and job_id:
        candidates += [m.parent for m in checkpoints.glob(f"{job_id}/chk-*/_metadata")]
    if savepoint and (Path(savepoint.removeprefix("file:")) / "_metadata").is_file():
        candidates.append(Path(savepoint.removeprefix("file:")))
    newest = max(candidates, key=lambda p: (p / "_metadata").stat().st_mtime, default=None)
    return str(newest) if newest else None


def drain_or_cancel(settings: Settings, job_id: str) -> str | None:
    """Stops a job with drain (event time jumps to the end, so results still waiting for the
    watermark are written) and a savepoint; cancels it when it cannot stop that way. Returns
    None when it drained, else what may be left unwritten and why (logged as a warning)."""
    try:
        stop_with_savepoint(settings, job_id, drain=True, timeout=60)
        wait_until_ended(settings, job_id)
        return None
    except (JobError, requests.RequestException) as error:
        unwritten = undrained(settings, job_id, str(error).splitlines()[0])
    log.warning(unwritten)
    cancel(settings, job_id)
    return unwritten


def undrained(settings: Settings, job_id: str, cause: str) -> str:
    """What a job cancelled without its drain leaves unwritten: the checkouts event time had
    not passed yet that had no click so far. Their number is estimated from the checkouts the
    job counted over the last OUT_OF_ORDERNESS_SECONDS of event time it had seen."""
    from attribution import metrics

    def checkouts() -> float:
        return sum(metrics.business_counts(metrics.scrape(settings), job_id).get("checkouts", {}).values())

    try:
        watermark = vertex_watermark(settings, job_id, "IntervalJoin") / 1000
        first = checkouts()
        time.sleep(1)  # the rate over one second
        rate = checkouts() - first
    except (requests.RequestException, LookupError, ValueError):
        watermark, rate = float("-inf"), 0.0
    # A rowtime watermark counts datetime_occured's wall-clock values as if they were UTC.
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(watermark)) if watermark > 0 else "its start"
    estimate = f"about {rate * settings.out_of_orderness_seconds:.0f} at the last second's {rate:.0f}/s; "
    return (
        f"job {job_id} did not drain ({cause}), so it was cancelled: checkouts with datetime_occured "
        f"after {since} "
        f"that had no click yet may be unwritten ({estimate if rate else ''}they are in its last "
        "retained checkpoint, which `make job` resumes from while the broker still holds its topics)"
    )


def written_before_broker(path: str, broker_started: float | None) -> bool:
    """Whether a checkpoint/savepoint predates the running embedded broker. The embedded broker
    keeps topics in memory: state written before it (re)started holds offsets into topics that
    no longer exist, and resuming from them could skip the first events of the new topics."""
    metadata = Path(path.removeprefix("file:")) / "_metadata"
    return broker_started is not None and metadata.exists() and broker_started > metadata.stat().st_mtime


def unless_before_broker(point: str | None, broker_started: float | None) -> str | None:
    """`point`, or None (start without state) when it predates the running embedded broker.
    Draining before the state is left behind (`make down`, the keeper on a broker restart) has
    written the results that were waiting for event time."""
    if point and written_before_broker(point, broker_started):
        log.warning(
            f"not resuming {point}: it predates the broker's restart, whose topics started "
            "empty. Starting fresh; clicks from before the restart cannot attribute new checkouts."
        )
        return None
    return point
