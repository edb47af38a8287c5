"""What a security review checks on the running stack: who runs each process, where each one
listens, who can read STACK_DIR, and that passwords are asked for and never written down."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psutil
import psycopg2
import pytest

from attribution import account, keeper, supervision
from attribution.config import ROLES, Settings

pytestmark = pytest.mark.integration


def stack_processes(settings: Settings) -> list[psutil.Process]:
    """supervisord and everything it started."""
    daemon = psutil.Process(supervision.rpc(settings).getPID())
    return [daemon, *daemon.children(recursive=True)]


def test_no_stack_process_runs_as_root_and_each_listens_on_loopback_only(settings: Settings) -> None:
    processes = stack_processes(settings)
    owners = {p.pid: p.username() for p in processes}
    expected = account.SERVICE_ACCOUNT if os.geteuid() == 0 else psutil.Process().username()
    assert set(owners.values()) == {expected}, owners
    listening = [
        (c.laddr.ip, c.laddr.port, psutil.Process(c.pid).name())
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in owners
    ]
    # The broker, Postgres, Flink's RPC, blob, data, REST and metrics ports, Prometheus.
    assert {port for _, port, _ in listening} >= {
        settings.kafka_port, settings.postgres_port, settings.flink_rest_port, settings.flink_rpc_port,
        settings.metrics_ports[0], settings.prometheus_port,
    }  # fmt: skip
    outside = [entry for entry in listening if entry[0] not in {"127.0.0.1", "::ffff:127.0.0.1"}]
    assert outside == [], outside


def test_the_stack_directory_is_private_and_holds_no_password(settings: Settings) -> None:
    mode = settings.stack_path.stat().st_mode
    assert stat.S_IMODE(mode) == 0o700, oct(mode)
    for path in settings.stack_path.glob("*.json"):
        assert "POSTGRES_PASSWORD" not in path.read_text(), path
    # Every file the stack wrote (logs, configs, Flink's scratch files), but Postgres' own data
    # (where the roles are, hashed) and the jars: no role's password, whatever the file.
    passwords = [settings.role_password(role).encode() for role in ROLES]
    skipped = {settings.stack_path / name for name in ("postgres", "flink-lib", "flink-plugins")}
    files = [
        Path(folder, name)
        for folder, _, names in os.walk(settings.stack_path)  # a folder gone meanwhile is passed over
        if not any(Path(folder) == top or top in Path(folder).parents for top in skipped)
        for name in names
    ]
    assert len(files) > 10, files  # the logs and configs at least
    leaking = [path for path in files if any(password in contents(path) for password in passwords)]
    assert leaking == [], leaking
    intent = keeper.read_intent(settings)
    assert intent is None or "POSTGRES_PASSWORD" not in intent.env


def contents(path: Path) -> bytes:
    """A regular file's bytes; none for a socket, or a file gone meanwhile (checkpoints rotate)."""
    try:
        return path.read_bytes() if path.is_file() else b""
    except FileNotFoundError:
        return b""


def test_postgres_asks_for_a_password_over_its_socket_too(settings: Settings) -> None:
    sockets = settings.stack_path / "postgres" / "run"
    assert stat.S_IMODE(sockets.stat().st_mode) == 0o700
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host=str(sockets), port=settings.postgres_port, user=settings.postgres_user,
                         dbname=settings.postgres_db)  # fmt: skip


def test_a_password_with_a_space_a_quote_and_a_backslash_works(settings: Settings) -> None:
    """Connection strings are quoted by the driver: such a password reaches Postgres intact."""
    password = "it's a \\ pass word"
    with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS quoted_password_test")
        cur.execute("CREATE ROLE quoted_password_test LOGIN PASSWORD %s", (password,))
    conn.close()
    try:
        quoted = Settings.from_env(
            {**settings.to_env(), "POSTGRES_USER": "quoted_password_test", "POSTGRES_PASSWORD": password}
        )
        with psycopg2.connect(quoted.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == ("quoted_password_test",)
        conn.close()
    finally:
        with psycopg2.connect(settings.psycopg_dsn()) as conn, conn.cursor() as cur:
            cur.execute("DROP ROLE quoted_password_test")
        conn.close()


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (
            "job",
            ["SELECT id, username FROM {users}", "SELECT count(*) FROM {results}"],
            ["SELECT password FROM {users}", "DELETE FROM {results}",
             "INSERT INTO {users} VALUES (-1, 'x', 'x')"],
        ),
        (
            "reader",
            ["SELECT count(*) FROM {results}", "SELECT count(*) FROM {dead}",
             "SELECT id, username FROM {users}"],
            ["INSERT INTO {results} (checkout_id) VALUES ('x')", "UPDATE {users} SET username = 'x'",
             "SELECT password FROM {users}", "DELETE FROM {dead}"],
        ),
        (
            "generator",
            ["INSERT INTO {users} VALUES (-7, 'x', 'x') ON CONFLICT DO NOTHING"],
            ["SELECT count(*) FROM {results}", "INSERT INTO {results} (checkout_id) VALUES ('x')",
             "SELECT count(*) FROM {dead}"],
        ),
    ],
)  # fmt: skip
def test_each_client_role_has_only_the_rights_it_needs(
    settings: Settings, role: str, allowed: list[str], refused: list[str]
) -> None:
    names = {
        "users": settings.users_table,
        "results": settings.sink_table,
        "dead": settings.dead_letter_table,
    }
    conn = psycopg2.connect(settings.as_role(role).psycopg_dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in allowed:
                cur.execute(statement.format(**names))
            for statement in refused:
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement.format(**names))
    finally:
        conn.close()
