"""Process supervision of the embedded stack, by supervisord (PyPI `supervisor`).

supervisord restarts a service that dies, with back-off, and keeps its log in STACK_DIR/logs.
This module renders its config (conf/supervisord.conf.j2), starts the daemon and talks to it
over its XML-RPC control socket. What runs under it is defined in attribution/services.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from attribution.account import hand_over, service_account_name
from attribution.config import Settings
from attribution.templates import render_file

log = logging.getLogger(__name__)

# supervisor's process states (supervisor/states.py), as getProcessInfo reports them.
UP_STATES = {"STARTING", "RUNNING"}
DEAD_STATES = {"STOPPED", "EXITED", "FATAL", "UNKNOWN"}


class SupervisionError(RuntimeError):
    """supervisord or one of its programs did not do what was asked."""


@dataclass(frozen=True)
class Program:
    """One supervised service: its command line and how it is run."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    stop_signal: str = "TERM"
    autorestart: str = "true"  # "unexpected": a clean exit (a finished generator) is final
    port: int | None = None
    # When the service is ready for its dependants; None: once supervisord reports it RUNNING.
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 120.0


def config_path(settings: Settings) -> Path:
    return settings.stack_path / "supervisord.conf"


def socket_path(settings: Settings) -> Path:
    """The control socket; under /tmp when STACK_DIR is too deep for a Unix socket path."""
    path = settings.stack_path / "supervisor.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha1(str(settings.stack_path).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"attribution-supervisor-{digest}.sock"


def log_file(settings: Settings, name: str) -> Path:
    return settings.stack_path / "logs" / f"{name}.log"


def daemon_log(settings: Settings) -> Path:
    return log_file(settings, "supervisord")


def write_config(settings: Settings, programs: list[Program]) -> Path:
    (settings.stack_path / "logs").mkdir(parents=True, exist_ok=True)
    hand_over(settings.stack_path / "logs", recursive=False)
    path = config_path(settings)
    path.write_text(
        render_file(
            "conf/supervisord.conf.j2",
            user=service_account_name(),
            stack_dir=str(settings.stack_path),
            socket=str(socket_path(settings)),
            daemon_log=str(daemon_log(settings)),
            programs=programs,
            log_file=lambda name: str(log_file(settings, name)),
        )
    )
    hand_over(path)
    return path


def _proxy(settings: Settings) -> xmlrpc.client.ServerProxy:
    transport = SupervisorTransport(None, None, f"unix://{socket_path(settings)}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def rpc(settings: Settings) -> Any:  # the proxy's `supervisor` namespace
    return _proxy(settings).supervisor


def daemon_running(settings: Settings) -> bool:
    try:
        return rpc(settings).getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def start_daemon(settings: Settings, programs: list[Program]) -> None:
    """Starts supervisord (no program yet: `ensure_running` starts them in order)."""
    config = write_config(settings, programs)
    if daemon_running(settings):
        apply_config(settings)
        return
    socket_path(settings).unlink(missing_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SupervisionError(f"supervisord did not start: {(result.stderr or result.stdout).strip()}")
    deadline = time.monotonic() + 30
    while not daemon_running(settings):
        if time.monotonic() > deadline:
            raise SupervisionError(f"supervisord not answering on {socket_path(settings)}")
        time.sleep(0.2)


def apply_config(settings: Settings) -> None:
    """Makes a running supervisord take the rewritten config: added programs are added, changed
    ones are replaced once stopped (a running program with a new command keeps running until then)."""
    added, changed, removed = rpc(settings).reloadConfig()[0]
    for name in removed:
        _stop_quietly(settings, name)
        rpc(settings).removeProcessGroup(name)
    for name in changed:
        if process_info(settings, name)["statename"] in UP_STATES:
            continue
        rpc(settings).removeProcessGroup(name)
        rpc(settings).addProcessGroup(name)
    for name in added:
        rpc(settings).addProcessGroup(name)


def process_info(settings: Settings, name: str) -> dict:
    return rpc(settings).getProcessInfo(name)


def all_process_info(settings: Settings) -> list[dict]:
    if not daemon_running(settings):
        return []
    return rpc(settings).getAllProcessInfo()


def running_pid(settings: Settings, name: str) -> int | None:
    """The pid of a supervised service that is up, else None."""
    try:
        info = process_info(settings, name)
    except (OSError, xmlrpc.client.Error):
        return None
    return info["pid"] if info["statename"] in UP_STATES and info["pid"] else None


def started_at(settings: Settings, name: str) -> float | None:
    """When the running incarnation of a service started (epoch seconds), None if it is down."""
    try:
        info = process_info(settings, name)
    except (OSError, xmlrpc.client.Error):
        return None
    return float(info["start"]) if info["statename"] in UP_STATES else None


def ensure_running(settings: Settings, program: Program) -> None:
    """Starts a program unless it is up, then waits until it is ready; a program that keeps
    dying while it starts fails with the end of its log."""
    state = process_info(settings, program.name)["statename"]
    if state in UP_STATES:
        log.info(f"{program.name} already running")
    else:
        log.info(f"starting {program.name} (log: {log_file(settings, program.name)})")
        try:
            rpc(settings).startProcess(program.name, False)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise SupervisionError(f"{program.name}: {fault.faultString}") from None
    deadline = time.monotonic() + program.ready_timeout
    while time.monotonic() < deadline:
        info = process_info(settings, program.name)
        if info["statename"] in {"FATAL", "STOPPED", "EXITED"} and program.autorestart == "true":
            raise SupervisionError(
                f"{program.name} is {info['statename']} ({info['spawnerr'] or info['description']}); "
                f"last log lines:\n{tail(log_file(settings, program.name))}"
            )
        if info["statename"] == "RUNNING" and (program.ready is None or program.ready()):
            return
        time.sleep(0.3)
    raise SupervisionError(
        f"{program.name} not ready after {program.ready_timeout:.0f}s; last log lines:\n"
        + tail(log_file(settings, program.name))
    )


def _stop_quietly(settings: Settings, name: str) -> None:
    try:
        rpc(settings).stopProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" not in fault.faultString and "BAD_NAME" not in fault.faultString:
            raise


def stop(settings: Settings, name: str) -> None:
    """Stops a program (its stop signal, then SIGKILL to its whole process group after
    stopwaitsecs); supervisord does not restart a program stopped this way."""
    try:
        info = process_info(settings, name)
    except xmlrpc.client.Fault as fault:
        if "BAD_NAME" in fault.faultString:
            return  # not configured here (e.g. Prometheus when it is not installed)
        raise
    up = info["statename"] in UP_STATES and info["pid"]
    if not up and info["statename"] != "BACKOFF":
        return
    log.info(f"stopping {name}")
    _stop_quietly(settings, name)


def shutdown_daemon(settings: Settings) -> None:
    if not daemon_running(settings):
        return
    pid = rpc(settings).getPID()
    rpc(settings).shutdown()
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return not stat.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return False


def unexpected_exits(settings: Settings) -> dict[str, int]:
    """How often each service died on its own (and was restarted) since supervisord started."""
    counts: dict[str, int] = {}
    try:
        text = daemon_log(settings).read_text(errors="replace")
    except FileNotFoundError:
        return counts
    # Only the current daemon's lines: each start logs "supervisord started with pid".
    current = text.rsplit("supervisord started with pid", 1)[-1]
    for name in re.findall(r"exited: (\S+) \(.*; not expected\)", current):
        counts[name] = counts.get(name, 0) + 1
    return counts


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
