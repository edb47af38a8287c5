"""Keeps the job running without a human: the user's intent, and the keeper that acts on it.

`make job` records that the job should run (STACK_DIR/job-intent.json, with the job's settings
and id); `make stop-job` and `make cancel` record that it should not. The keeper runs beside the
cluster (supervised in the embedded stack, a service in Compose) and every few seconds:

- resubmits the job when the cluster no longer knows it (a JobManager that restarted has no
  memory of it: a standalone session cluster without HA), from the newest retained checkpoint
  of the job or, before its first checkpoint, from what the job itself was started from;
- leaves alone a job that was cancelled or stopped by other means (web UI, REST) and records that,
  and records a job that FAILED instead of resubmitting it into a crash loop;
- after the embedded broker restarted (its topics start empty), creates the topics again, drains
  the job (results waiting for event time are written) and starts it without state: offsets
  into the old topics mean nothing in the new ones.

A TaskManager crash needs none of this: Flink restarts the job from its checkpoint by itself
once supervisord has restarted the TaskManager.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from attribution import job, provision, supervision
from attribution.config import Settings

RUNNING, STOPPED, FAILED = "running", "stopped", "failed"
MAX_SUBMISSIONS = 3


@dataclass(frozen=True)
class Intent:
    state: str
    env: dict[str, str]  # the job's settings (Settings.to_env)
    job_id: str | None = None
    restore_from: str | None = None  # what job_id was started from
    savepoint: str | None = None  # the last savepoint `make stop-job` took of it
    broker_started: float | None = None  # the embedded broker incarnation job_id reads from
    note: str = ""
    failed_submissions: int = 0  # in a row; at MAX_SUBMISSIONS the keeper gives up (no crash loop)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def log(message: str) -> None:
    print(f"[keeper {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _intent_file(settings: Settings) -> Path:
    return settings.stack_path / "job-intent.json"


def read_intent(settings: Settings) -> Intent | None:
    try:
        return Intent(**json.loads(_intent_file(settings).read_text()))
    except FileNotFoundError:
        return None


def write_intent(settings: Settings, intent: Intent) -> None:
    path = _intent_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dataclasses.asdict(intent), indent=2))
    temporary.replace(path)


@contextlib.contextmanager
def exclusive(settings: Settings) -> Iterator[None]:
    """One actor at a time: the keeper and `make job`/`stop-job` never submit or stop together."""
    settings.stack_path.mkdir(parents=True, exist_ok=True)
    with open(settings.stack_path / "job.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def broker_incarnation(settings: Settings) -> float | None:
    """When the embedded broker now running started; None without one (Compose: Kafka keeps its
    topics across restarts, so there is nothing to guard against)."""
    return supervision.started_at(settings, "broker")


# --- what the user asks for ---------------------------------------------------------------------
def start_job(
    settings: Settings,
    fresh: bool = False,
    savepoint: str | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """Submits the job unless it already runs, and records that it should keep running.
    Returns its id."""
    with exclusive(settings):
        running = job.active_jobs(settings, settings.job_name)
        broker = broker_incarnation(settings)
        if running:
            say(f"{settings.job_name} is already {running[0].state} (job id {running[0].job_id})")
            intent = read_intent(settings)
            wanted = settings.to_env()
            changed = sorted(k for k in wanted if intent is not None and intent.env.get(k) != wanted[k])
            if changed:
                say(
                    f"  it was started with other settings ({', '.join(changed)}): `make stop-job`, then "
                    "`make job` applies yours (`make job FRESH=1` if they change the SQL, as "
                    "ATTRIBUTION_MODELS does)"
                )
            if intent is None or intent.state != RUNNING:
                write_intent(
                    settings, Intent(RUNNING, settings.to_env(), running[0].job_id, broker_started=broker)
                )
            return running[0].job_id
        restore = None if fresh else job.unless_before_broker(savepoint or _lineage(settings), broker)
        if restore:
            say(f"Restoring state and offsets from {restore}  (`make job FRESH=1` starts without state)")
        say(f"Submitting {settings.job_name} to {settings.flink_rest_url} ...")
        job_id = job.submit(settings, savepoint=restore)
        write_intent(
            settings, Intent(RUNNING, settings.to_env(), job_id, restore_from=restore, broker_started=broker)
        )
        return job_id


def _lineage(settings: Settings) -> str | None:
    """The newest restore point of the job `make job` last started under this name: its retained
    checkpoints, or the savepoint `make stop-job` took, or what it was itself started from."""
    intent = read_intent(settings)
    if intent is None or intent.env.get("JOB_NAME") != settings.job_name:
        return None
    return job.newest_restore_point(settings, intent.job_id, intent.savepoint) or intent.restore_from


def stop_job(settings: Settings, cancel: bool, say: Callable[[str], None] = print) -> None:
    """Records that the job should not run, then stops it (with a savepoint unless cancel)."""
    with exclusive(settings):
        intent = read_intent(settings)
        if intent is not None:
            intent = dataclasses.replace(intent, state=STOPPED, note="stopped by the user")
            write_intent(settings, intent)
        for status in job.active_jobs(settings, settings.job_name):
            if cancel:
                job.cancel(settings, status.job_id)
                say(f"cancelled {status.job_id} (the keeper will not resubmit it; `make job` does)")
            else:
                location = job.stop_with_savepoint(settings, status.job_id)
                if intent is not None and intent.job_id == status.job_id:
                    write_intent(settings, dataclasses.replace(intent, savepoint=location))
                say(f"stopped {status.job_id} with a savepoint: {location}  (`make job` resumes from it)")


# --- the keeper -----------------------------------------------------------------------------------
def keep(settings: Settings, start: bool = False, interval: float = 2.0) -> None:
    """Runs until killed. With `start`, submits the job first if no intent was ever recorded."""
    log(f"watching the job of {settings.stack_path} on {settings.flink_rest_url}")
    _status_file(settings).unlink(missing_ok=True)  # a previous keeper's last action is not this one's
    loops = 0
    topics_for: float | None = None
    while True:
        action = ""
        try:
            broker = broker_incarnation(settings)
            if broker is not None and broker != topics_for:
                # A new embedded broker has no topics: the generator and the job need them.
                created = provision.create_topics(settings)
                if created:
                    log(f"the broker started empty: created {', '.join(created)}")
                topics_for = broker
            if start and read_intent(settings) is None and _cluster_up(settings):
                start_job(settings, say=log)
                action = "started the job"
            with exclusive(settings):
                action = check_once(settings, broker) or action
        except (requests.RequestException, job.JobError, OSError) as error:
            action = f"will retry: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
            log(action)
        except Exception as error:  # kafka and psycopg errors: retried, never fatal to the keeper
            action = f"will retry: {type(error).__name__}: {str(error)[:300]}"
            log(action)
        loops += 1
        _write_status(settings, loops, action)
        time.sleep(interval)


def _cluster_up(settings: Settings) -> bool:
    try:
        job.rest_get(settings, "/overview")
        return True
    except requests.RequestException:
        return False


def check_once(settings: Settings, broker: float | None) -> str:
    """One look at the job; returns what was done ('' for nothing)."""
    intent = read_intent(settings)
    if intent is None or intent.state != RUNNING or not _cluster_up(settings):
        return ""
    job_settings = intent.settings
    if broker is not None and intent.broker_started is not None and broker > intent.broker_started:
        return _restart_on_new_broker(settings, intent, broker)
    state = _state_of(settings, intent.job_id)
    if state in job.ACTIVE_STATES:
        return ""
    if state in {"CANCELED", "FINISHED"}:
        write_intent(settings, dataclasses.replace(intent, state=STOPPED, note=f"job {state} outside make"))
        log(f"job {intent.job_id} was {state} by someone: not resubmitting it (`make job` starts it)")
        return f"job {state}: left stopped"
    if state == "FAILED":
        cause = job.root_exception(settings, intent.job_id or "")
        write_intent(settings, dataclasses.replace(intent, state=FAILED, note=cause))
        log(f"job {intent.job_id} FAILED: {cause}. Not resubmitting (it would fail again); see the web UI")
        return "job failed: left failed"
    # The cluster does not know the job: its JobManager restarted.
    adopted = job.active_jobs(settings, job_settings.job_name)
    if adopted:
        write_intent(settings, dataclasses.replace(intent, job_id=adopted[0].job_id))
        return f"adopted {adopted[0].job_id}"
    restore = job.newest_restore_point(settings, intent.job_id) or intent.restore_from
    if restore and job.written_before_broker(restore, broker):
        restore = None
    log(f"job {intent.job_id} is gone from the cluster (JobManager restarted): resubmitting from {restore}")
    try:
        job_id = job.submit(job_settings, savepoint=restore)
    except job.JobError as error:
        return _submission_failed(settings, intent, error)
    write_intent(
        settings,
        dataclasses.replace(intent, job_id=job_id, restore_from=restore, note="", failed_submissions=0),
    )
    log(f"resubmitted as {job_id}")
    return f"resubmitted {job_id} from {restore}"


def _submission_failed(settings: Settings, intent: Intent, error: job.JobError) -> str:
    """Counts a failed resubmission; gives up after MAX_SUBMISSIONS in a row (the SQL may have
    changed so that the checkpoint no longer fits: a human decides, e.g. `make job FRESH=1`)."""
    failures = intent.failed_submissions + 1
    state = FAILED if failures >= MAX_SUBMISSIONS else RUNNING
    cause = str(error)
    write_intent(settings, dataclasses.replace(intent, state=state, note=cause, failed_submissions=failures))
    if state == FAILED:
        log(f"giving up after {failures} failed submissions: {cause}. `make job` (or FRESH=1) starts it")
        return "resubmission failed: left failed"
    log(f"submission {failures} of {MAX_SUBMISSIONS} failed: {cause}")
    return f"resubmission failed ({failures}/{MAX_SUBMISSIONS})"


def _state_of(settings: Settings, job_id: str | None) -> str | None:
    if job_id is None:
        return None
    for entry in job.rest_get(settings, "/jobs/overview")["jobs"]:
        if entry["jid"] == job_id:
            return entry["state"]
    return None


def _restart_on_new_broker(settings: Settings, intent: Intent, broker: float) -> str:
    job_settings = intent.settings
    provision.create_topics(job_settings)
    if _state_of(settings, intent.job_id) in job.ACTIVE_STATES and intent.job_id:
        log(f"the broker restarted with empty topics: draining job {intent.job_id} (pending results written)")
        job.drain_or_cancel(settings, intent.job_id, say=log)
    log(
        "starting the job without state: offsets into the old broker's topics mean nothing in the new "
        "ones. Events held only by the old broker are gone; clicks before the restart no longer "
        "attribute checkouts after it."
    )
    job_id = job.submit(job_settings)
    write_intent(
        settings,
        dataclasses.replace(
            intent, job_id=job_id, restore_from=None, broker_started=broker, note="new broker"
        ),
    )
    return f"new broker: restarted the job fresh as {job_id}"


def _status_file(settings: Settings) -> Path:
    return settings.stack_path / "keeper-status.json"


def _write_status(settings: Settings, loops: int, action: str) -> None:
    previous = read_status(settings)
    status = {
        "loops": loops,
        "checked_at": time.time(),
        "last_action": action or previous.get("last_action", ""),
        "last_action_at": time.time() if action else previous.get("last_action_at"),
    }
    _status_file(settings).write_text(json.dumps(status))


def read_status(settings: Settings) -> dict:
    try:
        return json.loads(_status_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return {}
