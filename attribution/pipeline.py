"""The checkout-attribution Flink job: renders the SQL templates and submits them as one job.

define_pipeline() is the job between its inputs and outputs: production gives it the Kafka and
JDBC tables, tests/unit/test_rule.py bounded inputs and collecting outputs.

Run through `make job` (or `python -m attribution job`), which also waits until the job is RUNNING.
`python -m attribution.pipeline` submits the job to the cluster at FLINK_REST_HOST:FLINK_REST_PORT
(code/checkout_attribution.py does the same, for the Kubernetes operator's application mode);
`--print-sql` prints the rendered SQL instead.

The Kafka and JDBC connectors and the project's UDF jar are not shipped with the job: they are on
the classpath of the cluster and of this client (FLINK_LIB_DIR, see attribution/deps.py), as in
the Compose image's /opt/flink/lib. Run directly, set FLINK_LIB_DIR=.stack/flink-lib first.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from attribution import sql
from attribution.config import Settings, describe, settings_or_exit

if TYPE_CHECKING:
    from pyflink.table import StatementSet, TableEnvironment


def job_configuration(settings: Settings, savepoint: str | None = None) -> dict[str, str]:
    """Flink options of the job itself (the cluster's own options are in conf/flink-config.yaml)."""
    # In application mode (the Kubernetes operator) the JobManager runs this script itself and
    # provides the executor and the parallelism (spec.job.parallelism); elsewhere the job goes to
    # a session cluster's REST endpoint.
    remote = (
        {
            "execution.target": "remote",
            "rest.address": settings.flink_rest_host,
            "rest.port": str(settings.flink_rest_port),
            "parallelism.default": str(settings.parallelism),
        }
        if settings.job_submission == "remote"
        else {}
    )
    conf = {
        **remote,
        "pipeline.name": settings.job_name,
        # The Table runtime never mutates a record it has emitted, so chained operators can pass
        # records without copying them (docs/benchmark-history.md has what it saved).
        "pipeline.object-reuse": "true",
        # A partly filled buffer is sent after this long (Flink's default is 100 ms per exchange;
        # the job has two exchanges on the way to the sink).
        "execution.buffer-timeout.interval": f"{settings.buffer_timeout_ms} ms",
        # datetime_occured carries no zone; this is the zone it is read in.
        "table.local-time-zone": settings.event_time_zone,
        # Per-checkout ranking state; the interval join cleans its own state by event time.
        "table.exec.state.ttl": f"{settings.state_ttl_seconds} s",
        # Emit the NULL-attribution row as soon as the watermark passes the checkout (the default,
        # stated because a larger value delays unattributed checkouts by that much).
        "table.exec.interval-join.min-cleanup-interval": "0 ms",
        "execution.checkpointing.interval": f"{settings.checkpoint_interval_seconds} s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": settings.checkpoint_uri,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "state.backend.type": settings.state_backend,
        # Only RocksDB writes incremental checkpoints; the heap backend snapshots all its state.
        "execution.checkpointing.incremental": str(settings.state_backend == "rocksdb").lower(),
        "restart-strategy.type": "exponential-delay",
    }
    if savepoint:
        conf["execution.state-recovery.path"] = savepoint
    return conf


def create_functions(t_env: TableEnvironment, settings: Settings) -> None:
    """The job's Java functions (idempotent). Before the sources: their rowtime calls one."""
    for statement in sql.template_statements(sql.FUNCTION_TEMPLATES, settings):
        t_env.execute_sql(statement)


def create_production_tables(t_env: TableEnvironment, settings: Settings) -> None:
    """The Kafka sources, the JDBC lookup table and sinks, and the metrics' blackhole, under the
    names of sql.PRODUCTION_SOURCES and sql.PRODUCTION_SINKS."""
    create_functions(t_env, settings)
    for statement in sql.template_statements(sql.TABLE_TEMPLATES, settings):
        t_env.execute_sql(statement)


def define_pipeline(
    t_env: TableEnvironment,
    settings: Settings,
    sources: Mapping[str, str],
    sinks: Mapping[str, str],
    output_sql: tuple[Path, ...] = (),
) -> StatementSet:
    """The whole job between its inputs and outputs, as a statement set to execute.

    `sources` names the tables to read: "clicks" and "checkouts" (raw events: payload,
    kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, and the time columns of
    source/_event_time.sql) and "users" (id, username; a lookup table, since the enrichment is a
    processing-time lookup join). `sinks` names the tables to write (sql.PRODUCTION_SINKS): one per
    attribution model (by its name in attribution/models.py), "dead_letters" and "metrics".
    Production passes the tables of create_production_tables(); the unit tests pass bounded inputs
    and collecting outputs. `output_sql`: template files that replace the job's outputs after
    parsing (a benchmark's own; each may start with its own DDL).

    Views are registered as Table objects, not with CREATE TEMPORARY VIEW: a view that several
    statements read (the parsed events, each step the metrics tap) is then planned once and its
    rows handed to every reader. A SQL view would be expanded anew in each statement, and each
    copy parsed, looked up and joined again.
    """
    create_functions(t_env, settings)
    statement_set = t_env.create_statement_set()
    parsing = sql.template_statements(sql.PARSE_TEMPLATES, settings, sources, sinks)
    outputs = (
        tuple(
            s
            for path in output_sql
            for s in sql.statements(sql.render_string(path.read_text(), settings, sources, sinks))
        )
        if output_sql
        else sql.template_statements(sql.OUTPUT_TEMPLATES, settings, sources, sinks)
    )
    for statement in parsing + outputs:
        view = sql.view_definition(statement)
        if view:
            name, query = view
            t_env.create_temporary_view(name, t_env.sql_query(query))
        elif sql.is_insert(statement):
            statement_set.add_insert_sql(statement)
        else:
            t_env.execute_sql(statement)  # e.g. a benchmark's own sink
    return statement_set


def submit(settings: Settings, savepoint: str | None = None, output_sql: tuple[Path, ...] = ()) -> str:
    """Submit the job (detached) and return its id. `output_sql` replaces the job's outputs
    (define_pipeline)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = settings.as_role("job")  # writes its results, reads user names: nothing else
    env_settings = EnvironmentSettings.new_instance().in_streaming_mode().build()
    t_env = TableEnvironment.create(env_settings)
    for key, value in job_configuration(settings, savepoint).items():
        t_env.get_config().set(key, value)

    create_production_tables(t_env, settings)
    statement_set = define_pipeline(t_env, settings, sql.PRODUCTION_SOURCES, sql.PRODUCTION_SINKS, output_sql)
    result = statement_set.execute()
    return str(result.get_job_client().get_job_id())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--print-sql", action="store_true", help="print the rendered SQL and exit")
    parser.add_argument(
        "--sql-client-init",
        action="store_true",
        help="print the tables and views `make sql-client` declares, as SQL, and exit",
    )
    parser.add_argument("--savepoint", help="restore from this savepoint or retained checkpoint path")
    parser.add_argument(
        "--output-sql",
        action="append",
        type=Path,
        help="run this SQL template file instead of the job's outputs (repeatable; benchmarks)",
    )
    parser.add_argument("--job-id-file", type=Path, help="write the submitted job's id to this file")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    # What is printed names the role, never its password.
    shown = dataclasses.replace(settings, postgres_password="********", role_password_seed="********")
    if args.print_sql:
        print(sql.job_sql(shown.as_role("job")).script().replace(shown.role_password("job"), "********"))
        return 0
    if args.sql_client_init:
        print(sql.sql_client_init(shown).replace(shown.role_password("reader"), "********"), end="")
        return 0
    job_id = submit(settings, args.savepoint, tuple(args.output_sql or ()))
    if args.job_id_file:
        args.job_id_file.write_text(job_id)
    else:
        print(job_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
