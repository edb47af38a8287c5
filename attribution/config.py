"""All configuration in one typed place.

Every setting has a default that works for the embedded stack on 127.0.0.1 and an environment
variable that overrides it. A `.env` file beside the Makefile sets them too, as Docker Compose
reads it: the environment wins. The SQL templates, the Flink cluster config, the process manager,
the generator and the tests all read from `Settings`; nothing else reads the environment. Every
value is checked when it is read: a bad one fails with one line that names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import re
import sys
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlparse

from attribution.models import MODELS, PRIMARY

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The file of settings read under the environment's; ATTRIBUTION_ENV_FILE names another, or none ("").
ENV_FILE_VARIABLE = "ATTRIBUTION_ENV_FILE"


def schema_of(table: str) -> str:
    """The schema of a table name as the settings give it ("commerce.users"; unqualified: public)."""
    return table.rsplit(".", 1)[0] if "." in table else "public"


def unqualified(table: str) -> str:
    """A table name without its schema."""
    return table.rsplit(".", 1)[-1]


# What the output tables (postgres/init.sql) can hold, checked by the job before any write: a
# record that breaks a limit is dead-lettered instead of failing the sink on every retry.
# checkout_id and click_id are primary-key columns. A Postgres btree entry holds at most 2,704
# bytes, and the linear table's key holds both ids at up to 4 bytes a character.
ID_MAX_CHARS = 256

# A JDBC connection attempt to a Postgres that does not answer (cut off: packets dropped) fails
# after this long and is retried.
JDBC_CONNECT_TIMEOUT_SECONDS = 10


# Postgres roles, each with only the rights its client needs (postgres/init.sql): the job writes
# its result tables and dead letters and reads users; the reader (`make sql-client`, `make psql`)
# reads them; the generator writes users and products. POSTGRES_USER only creates the schema.
ROLES = {"job": "attribution_job", "reader": "attribution_reader", "generator": "attribution_generator"}


class ConfigError(ValueError):
    """A setting's environment override could not be parsed."""


def _setting(env: str, default: Any, doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "secret": secret})


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE = re.compile(rf"({_IDENTIFIER.pattern}\.)?{_IDENTIFIER.pattern}")
# Flink's MemorySize: a number and an optional unit (bytes when absent).
_MEMORY = re.compile(r"\d+\s*(b|bytes|k|kb|kibibytes|m|mb|mebibytes|g|gb|gibibytes|t|tb|tebibytes)?", re.I)
_OFFSET_ZONE = re.compile(r"(UTC|GMT)[+-]\d{1,2}(:\d{2})?")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_OFFSETS = re.compile(r"partition:\d+,offset:\d+(;partition:\d+,offset:\d+)*")


@dataclass(frozen=True)
class Settings:
    # Kafka
    kafka_bootstrap_servers: str = _setting(
        "KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092", "Kafka bootstrap servers (host:port[,host:port])"
    )
    clicks_topic: str = _setting("CLICKS_TOPIC", "clicks", "Topic with click events")
    checkouts_topic: str = _setting("CHECKOUTS_TOPIC", "checkouts", "Topic with checkout events")
    topic_partitions: int = _setting(
        "KAFKA_TOPIC_PARTITIONS", 2, "Partitions per topic when the stack creates them"
    )
    consumer_group_id: str = _setting(
        "KAFKA_CONSUMER_GROUP", "checkout-attribution", "Consumer group of the Flink job"
    )
    scan_startup_mode: str = _setting(
        "KAFKA_SCAN_STARTUP_MODE",
        "earliest-offset",
        "Where a job without a checkpoint starts reading: earliest-offset, latest-offset, group-offsets, "
        "timestamp (KAFKA_SCAN_STARTUP_TIMESTAMP) or specific-offsets (*_STARTUP_OFFSETS)",
    )
    scan_startup_timestamp: str = _setting(
        "KAFKA_SCAN_STARTUP_TIMESTAMP",
        "",
        "With KAFKA_SCAN_STARTUP_MODE=timestamp: the first Kafka timestamp read, ISO-8601 (UTC unless it "
        "names its offset), e.g. 2024-03-01T09:00:00Z",
    )
    clicks_startup_offsets: str = _setting(
        "CLICKS_STARTUP_OFFSETS",
        "",
        "With KAFKA_SCAN_STARTUP_MODE=specific-offsets: where each clicks partition starts, as "
        "partition:0,offset:42;partition:1,offset:300",
    )
    checkouts_startup_offsets: str = _setting(
        "CHECKOUTS_STARTUP_OFFSETS", "", "The same for the checkouts topic"
    )

    scan_bounded_mode: str = _setting(
        "KAFKA_SCAN_BOUNDED_MODE",
        "unbounded",
        "Where reading stops: unbounded (the job), latest-offset (`make sql-client SQL_FILE=...`) or "
        "timestamp (KAFKA_SCAN_BOUNDED_TIMESTAMP, `make backfill`)",
    )
    scan_bounded_timestamp: str = _setting(
        "KAFKA_SCAN_BOUNDED_TIMESTAMP",
        "",
        "With KAFKA_SCAN_BOUNDED_MODE=timestamp: reading stops before this Kafka timestamp, ISO-8601",
    )

    # Postgres
    postgres_host: str = _setting("POSTGRES_HOST", "127.0.0.1", "Postgres host")
    postgres_port: int = _setting("POSTGRES_PORT", 5432, "Postgres port")
    postgres_db: str = _setting("POSTGRES_DB", "postgres", "Postgres database")
    postgres_user: str = _setting("POSTGRES_USER", "postgres", "Postgres user")
    postgres_password: str = _setting("POSTGRES_PASSWORD", "postgres", "Postgres password", secret=True)
    role_password_seed: str = _setting(
        "POSTGRES_ROLE_PASSWORD_SEED",
        "",
        "Derives the passwords of the job's, the reader's and the generator's Postgres roles "
        "(default: POSTGRES_PASSWORD); rotating it rotates them at the next `make up`",
        secret=True,
    )
    postgres_reader_password: str = _setting(
        "POSTGRES_READER_PASSWORD",
        "",
        "The read-only role's password, for a client that cannot derive it (Grafana); default: derived",
        secret=True,
    )
    users_table: str = _setting("USERS_TABLE", "commerce.users", "Lookup table with user names")
    products_table: str = _setting("PRODUCTS_TABLE", "commerce.products", "Products (the generator's)")
    sink_table: str = _setting(
        "SINK_TABLE",
        f"commerce.{MODELS[PRIMARY].table}",
        f"Result table of {PRIMARY}, one row per checkout_id; the other models' tables are in its schema",
    )
    dead_letter_table: str = _setting(
        "DEAD_LETTER_TABLE", "commerce.dead_letters", "Rejected records with the reason"
    )
    dead_letter_retention_days: int = _setting(
        "DEAD_LETTER_RETENTION_DAYS", 14, "Dead letters older than this are deleted (0: kept forever)"
    )

    # Flink cluster
    flink_rest_host: str = _setting("FLINK_REST_HOST", "127.0.0.1", "Flink REST API / web UI host")
    flink_rest_port: int = _setting("FLINK_REST_PORT", 8081, "Flink REST API / web UI port")
    flink_rpc_port: int = _setting("FLINK_RPC_PORT", 6123, "JobManager RPC port (embedded stack)")
    flink_bind_host: str = _setting(
        "FLINK_BIND_HOST", "127.0.0.1", "Address Flink's processes listen on (0.0.0.0 in containers)"
    )
    flink_jobmanager_host: str = _setting(
        "FLINK_JOBMANAGER_HOST",
        "127.0.0.1",
        "JobManager address for TaskManagers (its service name in Compose)",
    )
    flink_taskmanager_host: str = _setting(
        "FLINK_TASKMANAGER_HOST",
        "127.0.0.1",
        "Address a TaskManager advertises; 'auto': the address it reaches the JobManager from (containers)",
    )
    flink_metrics_ports: str = _setting(
        "FLINK_METRICS_PORTS", "9249-9260", "Port range of Flink's Prometheus reporter"
    )
    task_slots: int = _setting("FLINK_TASK_SLOTS", 4, "Slots of the embedded TaskManager")
    taskmanager_memory: str = _setting("FLINK_TASKMANAGER_MEMORY", "2560m", "TaskManager process size")
    jobmanager_memory: str = _setting("FLINK_JOBMANAGER_MEMORY", "1024m", "JobManager process size")

    # The job
    job_name: str = _setting("JOB_NAME", "checkout-attribution-job", "Flink job name")
    job_submission: str = _setting(
        "JOB_SUBMISSION",
        "remote",
        "remote: submit to the cluster at FLINK_REST_HOST; application: run inside the JobManager "
        "(Flink Kubernetes Operator, k8s/flinkdeployment.yaml)",
    )
    parallelism: int = _setting("FLINK_PARALLELISM", 2, "Parallelism of the job")
    attribution_window_seconds: int = _setting(
        "ATTRIBUTION_WINDOW_SECONDS", 3600, "A click qualifies if checkout_time - window <= click_time"
    )
    attribution_models: str = _setting(
        "ATTRIBUTION_MODELS",
        "first_click",
        "Models the job writes, comma-separated: " + ", ".join(MODELS) + " (docs/models.md)",
    )
    time_decay_half_life_seconds: int = _setting(
        "TIME_DECAY_HALF_LIFE_SECONDS",
        900,
        "time_decay: a click's weight halves every this many seconds before the checkout",
    )
    out_of_orderness_seconds: int = _setting(
        "OUT_OF_ORDERNESS_SECONDS", 15, "Events up to this much out of order are handled exactly"
    )
    source_idle_timeout_seconds: int = _setting(
        "SOURCE_IDLE_TIMEOUT_SECONDS", 10, "A partition silent this long stops holding back event time"
    )
    max_future_skew_seconds: int = _setting(
        "MAX_FUTURE_SKEW_SECONDS",
        120,
        "Events stamped further ahead of their Kafka timestamp, or of the job's clock, are "
        "dead-lettered: a wrong clock cannot move event time (docs/reliability.md)",
    )
    max_payload_chars: int = _setting(
        "MAX_PAYLOAD_CHARS", 65536, "Longer records are dead-lettered (and stored cut to this length)"
    )
    event_time_zone: str = _setting(
        "EVENT_TIME_ZONE", "UTC", "Time zone of datetime_occured (compared with Kafka timestamps)"
    )
    state_ttl_seconds: int = _setting(
        "ATTRIBUTION_STATE_TTL_SECONDS",
        600,
        "How long per-checkout ranking state is kept (updates come within the out-of-orderness bound)",
    )
    lookup_cache_rows: int = _setting("LOOKUP_CACHE_ROWS", 100_000, "Users kept in the lookup cache")
    lookup_cache_ttl_seconds: int = _setting(
        "LOOKUP_CACHE_TTL_SECONDS", 60, "How long a cached user (or a miss) is trusted"
    )
    sink_flush_rows: int = _setting("SINK_FLUSH_ROWS", 500, "JDBC sink batch size")
    sink_flush_interval_ms: int = _setting("SINK_FLUSH_INTERVAL_MS", 100, "JDBC sink flush interval")
    buffer_timeout_ms: int = _setting(
        "BUFFER_TIMEOUT_MS", 20, "Longest a record waits in a network buffer between operators"
    )
    sink_max_retries: int = _setting("SINK_MAX_RETRIES", 5, "JDBC sink retries before the task fails")
    lookup_max_retries: int = _setting(
        "LOOKUP_MAX_RETRIES", 3, "JDBC user-lookup retries before the task fails"
    )
    postgres_socket_timeout_seconds: int = _setting(
        "POSTGRES_SOCKET_TIMEOUT_SECONDS",
        30,
        "A JDBC call (lookup or write) with no answer for this long fails and is retried",
    )
    checkpoint_interval_seconds: int = _setting("CHECKPOINT_INTERVAL_SECONDS", 10, "Checkpoint interval")
    checkpoint_dir: str = _setting(
        "CHECKPOINT_DIR", "", "Checkpoint storage URI (default: file://<STACK_DIR>/checkpoints)"
    )
    state_backend: str = _setting(
        "STATE_BACKEND",
        "hashmap",
        "hashmap: state on the JVM heap (fastest; the state must fit the heap); rocksdb: on local "
        "disk with incremental checkpoints (large state). Read by `make up` too (memory split)",
    )

    # Embedded stack
    stack_dir: str = _setting(
        "STACK_DIR", str(PROJECT_ROOT / ".stack"), "Data, logs and pid files of the embedded stack"
    )
    prometheus_port: int = _setting("PROMETHEUS_PORT", 9090, "Prometheus port (embedded, if installed)")
    grafana_port: int = _setting("GRAFANA_PORT", 3000, "Grafana port (Compose stack; `make viz`)")

    # --- derived values -------------------------------------------------------------------
    @property
    def metrics_ports(self) -> range:
        """The ports of FLINK_METRICS_PORTS ("9249-9260" or one port)."""
        low, _, high = self.flink_metrics_ports.partition("-")
        return range(int(low), int(high or low) + 1)

    @property
    def scan_startup_millis(self) -> int:
        """KAFKA_SCAN_STARTUP_TIMESTAMP in milliseconds since the epoch."""
        return _epoch_millis("KAFKA_SCAN_STARTUP_TIMESTAMP", self.scan_startup_timestamp)

    @property
    def scan_bounded_millis(self) -> int:
        """KAFKA_SCAN_BOUNDED_TIMESTAMP in milliseconds since the epoch."""
        return _epoch_millis("KAFKA_SCAN_BOUNDED_TIMESTAMP", self.scan_bounded_timestamp)

    @property
    def requested_models(self) -> tuple[str, ...]:
        """ATTRIBUTION_MODELS as given."""
        return tuple(m.strip() for m in self.attribution_models.split(",") if m.strip())

    @property
    def models(self) -> tuple[str, ...]:
        """The models of ATTRIBUTION_MODELS, in the registry's order (attribution/models.py)."""
        return tuple(m for m in MODELS if m in self.requested_models)

    def model_table(self, model: str) -> str:
        """The table or view users read a model's rows from (enabled or not)."""
        if model == PRIMARY:
            return self.sink_table
        return f"{schema_of(self.sink_table)}.{MODELS[model].table}"

    def model_written_table(self, model: str) -> str:
        """The table the job writes a model's rows to."""
        if model == PRIMARY:
            return self.sink_table
        return f"{schema_of(self.sink_table)}.{MODELS[model].written_table}"

    @property
    def model_written_tables(self) -> list[str]:
        """Every model's table the job writes (enabled or not)."""
        return [self.model_written_table(model) for model in MODELS]

    @property
    def model_views(self) -> list[str]:
        """The models' views of their written tables (postgres/init.sql)."""
        return [self.model_table(m) for m in MODELS if self.model_table(m) != self.model_written_table(m)]

    @property
    def model_comparison_view(self) -> str:
        """The view postgres/init.sql creates beside SINK_TABLE: one row per attribution model."""
        return f"{schema_of(self.sink_table)}.attribution_model_comparison"

    @property
    def stack_path(self) -> Path:
        return Path(self.stack_dir)

    @property
    def jdbc_url(self) -> str:
        # reWriteBatchedInserts turns a JDBC batch into multi-row INSERTs: fewer round trips.
        # The timeouts bound a call to a Postgres that is frozen or cut off with its
        # connections half-open: the call fails, is retried, and the task restarts, where without
        # them it would wait for TCP to give up (minutes) with checkpoints stalled behind it.
        return (
            f"jdbc:postgresql://{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
            f"?reWriteBatchedInserts=true&connectTimeout={JDBC_CONNECT_TIMEOUT_SECONDS}"
            f"&socketTimeout={self.postgres_socket_timeout_seconds}&tcpKeepAlive=true"
        )

    @property
    def checkpoint_uri(self) -> str:
        return self.checkpoint_dir or (self.stack_path / "checkpoints").as_uri()

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint directory on this machine, None when it is not a file:// URI."""
        parsed = urlparse(self.checkpoint_uri)
        return Path(parsed.path) if parsed.scheme == "file" else None

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.flink_rest_host}:{self.flink_rest_port}"

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])

    def to_env(self, secrets: bool = True) -> dict[str, str]:
        """Every setting as the environment variable that sets it: how settings cross into the
        driver's subprocess, the supervised services and the job keeper. Without `secrets`: for
        what is written down (the job's recorded settings)."""
        return {
            f.metadata["env"]: str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if secrets or not f.metadata["secret"]
        }

    def role_password(self, role: str) -> str:
        """The password of one of ROLES, derived from the seed: one secret to keep and rotate."""
        if role == "reader" and self.postgres_reader_password:
            return self.postgres_reader_password
        seed = (self.role_password_seed or self.postgres_password).encode()
        return hmac.new(seed, ROLES[role].encode(), hashlib.sha256).hexdigest()[:32]

    def as_role(self, role: str) -> Settings:
        """These settings connecting to Postgres as one of ROLES."""
        return dataclasses.replace(
            self, postgres_user=ROLES[role], postgres_password=self.role_password(role)
        )

    def psycopg_dsn(self) -> str:
        """A libpq connection string, quoted by the driver (a password may hold spaces and quotes)."""
        from psycopg2.extensions import make_dsn

        return make_dsn(
            host=self.postgres_host,
            port=self.postgres_port,
            dbname=self.postgres_db,
            user=self.postgres_user,
            password=self.postgres_password,
        )

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then the .env file and the environment (which wins over it), then explicit
        keyword overrides. Given `environ`, that alone."""
        environ = {**env_file_values(), **os.environ} if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _parse(raw, hints[f.name], f.metadata["env"])
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Each value within what it may be; the first that is not fails with one line naming it."""
        positive = [
            "topic_partitions",
            "parallelism",
            "task_slots",
            "attribution_window_seconds",
            "checkpoint_interval_seconds",
            "sink_flush_rows",
            "sink_flush_interval_ms",
            "state_ttl_seconds",
            "max_payload_chars",
            "lookup_cache_rows",
            "lookup_cache_ttl_seconds",
            "source_idle_timeout_seconds",
            "postgres_socket_timeout_seconds",
        ]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"{_env_of(name)} must be a whole number above 0, got {getattr(self, name)}"
                )
        counts = [
            "out_of_orderness_seconds",
            "max_future_skew_seconds",
            "dead_letter_retention_days",
            "sink_max_retries",
            "lookup_max_retries",
            "buffer_timeout_ms",
        ]
        for name in counts:
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"{_env_of(name)} must be a whole number, 0 or more, got {getattr(self, name)}"
                )
        for name in ("postgres_port", "flink_rest_port", "flink_rpc_port", "prometheus_port", "grafana_port"):
            _check_port(_env_of(name), getattr(self, name))
        for server in self.kafka_bootstrap_servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                servers = self.kafka_bootstrap_servers
                raise ConfigError(f"KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port], got {servers!r}")
            _check_port("KAFKA_BOOTSTRAP_SERVERS", int(port))
        low, _, high = self.flink_metrics_ports.partition("-")
        if not low.isdigit() or not (high or low).isdigit() or int(low) > int(high or low):
            raise ConfigError(
                f"FLINK_METRICS_PORTS must be a port or a range low-high, got {self.flink_metrics_ports!r}"
            )
        for metrics_port in (int(low), int(high or low)):
            _check_port("FLINK_METRICS_PORTS", metrics_port)
        for name in ("taskmanager_memory", "jobmanager_memory"):
            if not _MEMORY.fullmatch(getattr(self, name).strip()):
                raise ConfigError(
                    f"{_env_of(name)} must be a memory size as Flink writes it (e.g. 2560m, 2g, "
                    f"1024 mb), got {getattr(self, name)!r}"
                )
        if not _OFFSET_ZONE.fullmatch(self.event_time_zone):
            try:
                zoneinfo.ZoneInfo(self.event_time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"EVENT_TIME_ZONE must be a time zone (e.g. UTC, Europe/Berlin, GMT+02:00), "
                    f"got {self.event_time_zone!r}"
                ) from None
        for name in ("clicks_topic", "checkouts_topic"):
            if not _TOPIC.fullmatch(getattr(self, name)):
                raise ConfigError(
                    f"{_env_of(name)} must be a Kafka topic name (letters, digits, '.', '_', '-'), "
                    f"got {getattr(self, name)!r}"
                )
        startup_modes = {"earliest-offset", "latest-offset", "group-offsets", "timestamp", "specific-offsets"}
        if self.scan_startup_mode not in startup_modes:
            raise ConfigError(f"KAFKA_SCAN_STARTUP_MODE: unknown mode {self.scan_startup_mode!r}")
        if self.scan_bounded_mode not in {"unbounded", "latest-offset", "timestamp"}:
            raise ConfigError(
                "KAFKA_SCAN_BOUNDED_MODE must be unbounded, latest-offset or timestamp, "
                f"got {self.scan_bounded_mode!r}"
            )
        if self.scan_startup_mode == "timestamp":
            self.scan_startup_millis  # noqa: B018 (parsed here: an error names the variable)
        if self.scan_bounded_mode == "timestamp":
            self.scan_bounded_millis  # noqa: B018
        if self.scan_startup_mode == "specific-offsets":
            for env, offsets in (
                ("CLICKS_STARTUP_OFFSETS", self.clicks_startup_offsets),
                ("CHECKOUTS_STARTUP_OFFSETS", self.checkouts_startup_offsets),
            ):
                if not _OFFSETS.fullmatch(offsets):
                    raise ConfigError(
                        f"{env} must be partition:<n>,offset:<n> pairs joined by ';' with "
                        f"KAFKA_SCAN_STARTUP_MODE=specific-offsets, got {offsets!r}"
                    )
        requested = self.requested_models
        unknown = [m for m in requested if m not in MODELS]
        if unknown or not requested or len(set(requested)) != len(requested):
            raise ConfigError(
                f"ATTRIBUTION_MODELS must list one or more of {', '.join(MODELS)} once each, "
                f"got {self.attribution_models!r}"
            )
        tables = {
            "USERS_TABLE": self.users_table,
            "PRODUCTS_TABLE": self.products_table,
            "SINK_TABLE": self.sink_table,
            "DEAD_LETTER_TABLE": self.dead_letter_table,
            **{f"the {name} table": self.model_table(name) for name in MODELS if name != PRIMARY},
            **{
                f"the {name} table it writes": self.model_written_table(name)
                for name in MODELS
                if name != PRIMARY and self.model_written_table(name) != self.model_table(name)
            },
        }
        for env, table in tables.items():
            if not _TABLE.fullmatch(table):
                raise ConfigError(
                    f"{env} must be a table name, [schema.]table in letters, digits and _, got {table!r}"
                )
            same = [other for other, name in tables.items() if name == table and other != env]
            if same:
                raise ConfigError(f"{env} and {same[0]} name the same table {table!r}: each needs its own")
        if self.state_backend not in {"rocksdb", "hashmap"}:
            raise ConfigError(f"STATE_BACKEND must be rocksdb or hashmap, got {self.state_backend!r}")
        if self.job_submission not in {"remote", "application"}:
            raise ConfigError(f"JOB_SUBMISSION must be remote or application, got {self.job_submission!r}")


def _epoch_millis(env: str, text: str) -> int:
    """An ISO-8601 time (UTC unless it names its offset) in milliseconds since the epoch."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{env} must be an ISO-8601 time such as 2024-03-01T09:00:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _check_port(env: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ConfigError(f"{env} must hold ports from 1 to 65535, got {port}")


def env_file_values() -> dict[str, str]:
    """The settings of the .env file (ATTRIBUTION_ENV_FILE, default: beside the Makefile), read as
    Docker Compose reads it; none without the file."""
    path = os.environ.get(ENV_FILE_VARIABLE, str(PROJECT_ROOT / ".env"))
    if not path or not Path(path).is_file():
        return {}
    from dotenv import dotenv_values

    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def settings_or_exit() -> Settings:
    """The settings from the environment, or one line naming the bad setting and exit code 2:
    for the entry points (the CLI, the driver, the generator, the benchmarks)."""
    try:
        return Settings.from_env()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _env_of(name: str) -> str:
    return {f.name: f.metadata["env"] for f in dataclasses.fields(Settings)}[name]


def _parse(raw: str, kind: Any, env: str) -> Any:
    try:
        if kind is int:
            return int(raw)
        return str(raw)
    except ValueError:
        raise ConfigError(f"{env}={raw!r} is not a valid {getattr(kind, '__name__', kind)}") from None


def describe() -> str:
    """Every setting, its environment variable and default, for --help (docs/operations.md: a table)."""
    rows = [
        f"  {f.metadata['env']:<30} {f.default!s:<32} {f.metadata['doc']}"
        for f in dataclasses.fields(Settings)
    ]
    return "Environment variables (default, meaning):\n" + "\n".join(rows)
