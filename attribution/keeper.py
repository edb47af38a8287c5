"""Keeps the job running without a human: the user's intent, and the keeper that acts on it.

`make job` records that the job should run (STACK_DIR/job-intent.json, with the job's settings
and id); `make stop-job` and `make cancel` record that it should not. The keeper runs beside the
cluster (supervised in the embedded stack, a service in Compose) and every few seconds:

- resubmits the job when the cluster no longer knows it (a JobManager that restarted has no
  memory of it: a standalone session cluster without HA), from the newest retained checkpoint
  of the job or, before its first checkpoint, from what the job itself was started from;
- leaves alone a job that was cancelled or stopped by other means (web UI, REST) and records that,
  and records a job that FAILED instead of resubmitting it into a crash loop;
- retries a submission that failed for a passing reason (the REST endpoint, a timeout) with
  exponential back-off, for as long as it takes, and gives up only on what will not fix itself
  (the SQL or the state no longer fits: PERMANENT_ERRORS), naming it;
- watches the job's health (attribution/health.py: a restart loop, failing checkpoints, growing
  lag, rising dead letters), logs each new problem and records it for `make status`;
- deletes dead letters older than DEAD_LETTER_RETENTION_DAYS;
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
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from attribution import health, job, provision, supervision
from attribution.account import hand_over
from attribution.config import Settings

RUNNING, STOPPED, FAILED = "running", "stopped", "failed"
# Submission errors that another try cannot fix: the job's SQL does not plan, or the state it
# restores from does not fit it (a human decides, e.g. `make job FRESH=1`).
PERMANENT_ERRORS = (
    "ValidationException",
    "SqlParserException",
    "SqlValidateException",
    "TableException",
    "StateMigrationException",
    "ConfigError",
    "Failed to rollback to checkpoint",
    "Cannot map checkpoint/savepoint state",
)
# Back-off between failed submissions: 2 s, 4 s, ... up to 5 minutes, then every 5 minutes.
SUBMISSION_BACKOFF_SECONDS = (2.0, 300.0)
HEALTH_INTERVAL_SECONDS = 10.0
RETENTION_INTERVAL_SECONDS = 600.0


@dataclass(frozen=True)
class Intent:
    state: str
    env: dict[str, str]  # the job's settings without secrets (Settings.to_env(secrets=False))
    job_id: str | None = None
    restore_from: str | None = None  # what job_id was started from
    savepoint: str | None = None  # the last savepoint `make stop-job` took of it
    broker_started: float | None = None  # the embedded broker incarnation job_id reads from
    note: str = ""
    failed_submissions: int = 0  # in a row
    next_submission_at: float | None = None  # after a failed one: not before this time (epoch s)
    unwritten: str = ""  # a drain of the job that failed: what may be unwritten, and why

    @property
    def settings(self) -> Settings:
        """The job's settings, with the secrets of this process's own (never written down)."""
        secrets = {k: v for k, v in Settings.from_env().to_env().items() if k not in self.env}
        return Settings.from_env({**secrets, **self.env})


log = logging.getLogger(__name__)


def _intent_file(settings: Settings) -> Path:
    return settings.stack_path / "job-intent.json"


def read_intent(settings: Settings) -> Intent | None:
    try:
        return Intent(**json.loads(_intent_file(settings).read_text()))
    except FileNotFoundError:
        return None


def write_intent(settings: Settings, intent: Intent) -> None:
    _intent_file(settings).parent.mkdir(parents=True, exist_ok=True)
    _replace(_intent_file(settings), json.dumps(dataclasses.asdict(intent), indent=2))


def _replace(path: Path, text: str) -> None:
    """Writes a file the keeper and the CLI share whole (a reader never sees half of it), as the
    service account's."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    hand_over(temporary)
    temporary.replace(path)


@contextlib.contextmanager
def exclusive(settings: Settings) -> Iterator[None]:
    """One actor at a time: the keeper and `make job`/`stop-job` never submit or stop together."""
    settings.stack_path.mkdir(parents=True, exist_ok=True)
    with open(settings.stack_path / "job.lock", "w") as lock:
        hand_over(settings.stack_path / "job.lock")
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
) -> str:
    """Submits the job unless it already runs, and records that it should keep running.
    Returns its id."""
    with exclusive(settings):
        running = job.active_jobs(settings, settings.job_name)
        broker = broker_incarnation(settings)
        if running:
            log.info(f"{settings.job_name} is already {running[0].state} (job id {running[0].job_id})")
            intent = read_intent(settings)
            wanted = settings.to_env(secrets=False)
            changed = sorted(k for k in wanted if intent is not None and intent.env.get(k) != wanted[k])
            if changed:
                log.info(
                    f"  it was started with other settings ({', '.join(changed)}): `make stop-job`, then "
                    "`make job` applies yours (`make job FRESH=1` if they change the SQL, as "
                    "ATTRIBUTION_MODELS does)"
                )
            if intent is None or intent.state != RUNNING:
                write_intent(
                    settings,
                    Intent(RUNNING, settings.to_env(secrets=False), running[0].job_id, broker_started=broker),
                )
            return running[0].job_id
        restore = None if fresh else job.unless_before_broker(savepoint or _lineage(settings), broker)
        if restore:
            log.info(f"Restoring state and offsets from {restore}  (`make job FRESH=1` starts without state)")
        log.info(f"Submitting {settings.job_name} to {settings.flink_rest_url} ...")
        job_id = job.submit(settings, savepoint=restore)
        write_intent(
            settings,
            Intent(
                RUNNING, settings.to_env(secrets=False), job_id, restore_from=restore, broker_started=broker
            ),
        )
        return job_id


def _lineage(settings: Settings) -> str | None:
    """The newest restore point of the job `make job` last started under this name: its retained
    checkpoints, or the savepoint `make stop-job` took, or what it was itself started from."""
    intent = read_intent(settings)
    if intent is None or intent.env.get("JOB_NAME") != settings.job_name:
        return None
    return job.newest_restore_point(settings, intent.job_id, intent.savepoint) or intent.restore_from


def stop_job(settings: Settings, cancel: bool) -> None:
    """Records that the job should not run, then stops it (with a savepoint unless cancel)."""
    with exclusive(settings):
        intent = read_intent(settings)
        if intent is not None:
            intent = dataclasses.replace(intent, state=STOPPED, note="stopped by the user")
            write_intent(settings, intent)
        for status in job.active_jobs(settings, settings.job_name):
            if cancel:
                job.cancel(settings, status.job_id)
                log.info(f"cancelled {status.job_id} (the keeper will not resubmit it; `make job` does)")
            else:
                location = job.stop_with_savepoint(settings, status.job_id)
                if intent is not None and intent.job_id == status.job_id:
                    write_intent(settings, dataclasses.replace(intent, savepoint=location))
                log.info(
                    f"stopped {status.job_id} with a savepoint: {location}  (`make job` resumes from it)"
                )


# --- the keeper -----------------------------------------------------------------------------------
def keep(settings: Settings, start: bool = False, interval: float = 2.0) -> None:
    """Runs until killed. With `start`, submits the job first if no intent was ever recorded."""
    log.info(f"watching the job of {settings.stack_path} on {settings.flink_rest_url}")
    _status_file(settings).unlink(missing_ok=True)  # a previous keeper's last action is not this one's
    loops = 0
    topics_for: float | None = None
    watch = Watch()
    while True:
        action = ""
        try:
            broker = broker_incarnation(settings)
            if broker is not None and broker != topics_for:
                # A new embedded broker has no topics: the generator and the job need them.
                created = provision.create_topics(settings)
                if created:
                    log.info(f"the broker started empty: created {', '.join(created)}")
                topics_for = broker
            if start and read_intent(settings) is None and _cluster_up(settings):
                start_job(settings)
                action = "started the job"
            with exclusive(settings):
                action = check_once(settings, broker) or action
        except (requests.RequestException, job.JobError, OSError) as error:
            action = f"will retry: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
            log.info(action)
        except Exception as error:  # kafka and psycopg errors: retried, never fatal to the keeper
            action = f"will retry: {type(error).__name__}: {str(error)[:300]}"
            log.info(action)
        watch.look(settings)
        loops += 1
        _write_status(settings, loops, action, watch)
        time.sleep(interval)


@dataclass
class Watch:
    """The keeper's view of the job's health between rounds: lag samples over the last minutes
    (growth needs a history), the problems last logged, when dead letters were last pruned."""

    lag: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    looked_at: float = 0.0
    pruned_at: float = 0.0

    def look(self, settings: Settings) -> None:
        now = time.time()
        if now - self.looked_at < HEALTH_INTERVAL_SECONDS:
            return
        self.looked_at = now
        try:
            found = self._problems(settings, now)
        except Exception as error:  # a cluster or database that does not answer: said by status
            found = [f"health unknown: {type(error).__name__}: {str(error).splitlines()[0][:200]}"]
        for problem in found:
            if problem.split(":")[0] not in {p.split(":")[0] for p in self.problems}:
                log.warning(f"PROBLEM {problem}")
        self.problems = found
        if now - self.pruned_at >= RETENTION_INTERVAL_SECONDS:
            self.pruned_at = now
            try:
                pruned = prune_dead_letters(settings)
                if pruned:
                    days = settings.dead_letter_retention_days
                    log.info(f"deleted {pruned} dead letters older than {days} days")
            except Exception as error:
                log.info(f"dead-letter retention will retry: {type(error).__name__}: {error}")

    def _problems(self, settings: Settings, now: float) -> list[str]:
        intent = read_intent(settings)
        if intent is None or intent.state != RUNNING or intent.job_id is None or not _cluster_up(settings):
            self.lag.clear()
            return []
        state = _state_of(settings, intent.job_id)
        if state is None:
            return []
        lag = health.consumer_lag(settings, intent.job_id)
        if lag is not None:
            self.lag = [(t, v) for t, v in self.lag if now - t <= health.WINDOW_SECONDS] + [(now, lag)]
        return health.problems(
            settings,
            state,
            health.restarts(settings, intent.job_id, now),
            health.checkpoints(settings, intent.job_id, now) if state in job.ACTIVE_STATES else None,
            self.lag,
        )


def prune_dead_letters(settings: Settings) -> int:
    """Deletes the dead letters older than DEAD_LETTER_RETENTION_DAYS (0: keeps them all)."""
    if settings.dead_letter_retention_days == 0:
        return 0
    import psycopg2

    with psycopg2.connect(settings.psycopg_dsn(), connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute(
            f"DELETE FROM {settings.dead_letter_table} WHERE written_at < now() - %s * interval '1 day'",
            (settings.dead_letter_retention_days,),
        )
        deleted = cur.rowcount
    conn.close()
    return deleted


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
        log.info(f"job {intent.job_id} was {state} by someone: not resubmitting it (`make job` starts it)")
        return f"job {state}: left stopped"
    if state == "FAILED":
        cause = job.root_exception(settings, intent.job_id or "")
        write_intent(settings, dataclasses.replace(intent, state=FAILED, note=cause))
        log.error(
            f"job {intent.job_id} FAILED: {cause}. Not resubmitting (it would fail again); see the web UI"
        )
        return "job failed: left failed"
    # The cluster does not know the job: its JobManager restarted.
    adopted = job.active_jobs(settings, job_settings.job_name)
    if adopted:
        write_intent(settings, dataclasses.replace(intent, job_id=adopted[0].job_id))
        return f"adopted {adopted[0].job_id}"
    if intent.next_submission_at is not None and time.time() < intent.next_submission_at:
        return ""  # backing off after a failed submission
    restore = job.newest_restore_point(settings, intent.job_id) or intent.restore_from
    if restore and job.written_before_broker(restore, broker):
        restore = None
    log.info(
        f"job {intent.job_id} is gone from the cluster (JobManager restarted): resubmitting from {restore}"
    )
    try:
        job_id = job.submit(job_settings, savepoint=restore)
    except job.JobError as error:
        return _submission_failed(settings, intent, error)
    write_intent(
        settings,
        dataclasses.replace(
            intent,
            job_id=job_id,
            restore_from=restore,
            note="",
            failed_submissions=0,
            next_submission_at=None,
        ),
    )
    log.info(f"resubmitted as {job_id}")
    return f"resubmitted {job_id} from {restore}"


def permanent(error: Exception) -> bool:
    """Whether a submission error is one another try cannot fix (PERMANENT_ERRORS)."""
    return any(marker in str(error) for marker in PERMANENT_ERRORS)


def submission_backoff(failures: int) -> float:
    """Seconds to wait after the n-th failed submission in a row."""
    first, longest = SUBMISSION_BACKOFF_SECONDS
    return min(longest, first * 2 ** (failures - 1))


def _submission_failed(settings: Settings, intent: Intent, error: job.JobError) -> str:
    """Records a failed resubmission: a passing error is retried after a back-off, forever; one
    that will not fix itself leaves the job failed, with its cause, for a human."""
    failures = intent.failed_submissions + 1
    cause = str(error)
    if permanent(error):
        note = f"submission cannot succeed: {cause}. Fix it, then `make job` (or FRESH=1)"
        failed = dataclasses.replace(intent, state=FAILED, note=note, failed_submissions=failures)
        write_intent(settings, failed)
        log.error(f"giving up: {note}")
        return "resubmission failed for good: left failed"
    wait = submission_backoff(failures)
    note = f"submission failed {failures}x in a row, next try in {wait:.0f} s: {cause}"
    write_intent(
        settings,
        dataclasses.replace(
            intent, note=note, failed_submissions=failures, next_submission_at=time.time() + wait
        ),
    )
    log.info(note)
    return f"resubmission failed ({failures}x), retrying in {wait:.0f} s"


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
    unwritten = None
    if _state_of(settings, intent.job_id) in job.ACTIVE_STATES and intent.job_id:
        log.info(
            f"the broker restarted with empty topics: draining job {intent.job_id} (pending results written)"
        )
        unwritten = job.drain_or_cancel(settings, intent.job_id)
    log.info(
        "starting the job without state: offsets into the old broker's topics mean nothing in the new "
        "ones. Events held only by the old broker are gone; clicks before the restart no longer "
        "attribute checkouts after it."
    )
    job_id = job.submit(job_settings)
    write_intent(
        settings,
        dataclasses.replace(
            intent,
            job_id=job_id,
            restore_from=None,
            broker_started=broker,
            note="new broker",
            unwritten=unwritten or intent.unwritten,
        ),
    )
    return f"new broker: restarted the job fresh as {job_id}"


def _status_file(settings: Settings) -> Path:
    return settings.stack_path / "keeper-status.json"


def _write_status(settings: Settings, loops: int, action: str, watch: Watch) -> None:
    previous = read_status(settings)
    status = {
        "loops": loops,
        "checked_at": time.time(),
        "last_action": action or previous.get("last_action", ""),
        "last_action_at": time.time() if action else previous.get("last_action_at"),
        "problems": watch.problems,
        "problems_at": watch.looked_at,
        "lag": watch.lag,
    }
    _replace(_status_file(settings), json.dumps(status))


def read_status(settings: Settings) -> dict:
    try:
        return json.loads(_status_file(settings).read_text())
    except (FileNotFoundError, ValueError):
        return {}
