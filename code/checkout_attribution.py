"""The checkout-attribution Flink job: renders the SQL templates and submits them as one job.

Run through `make job` (or `python -m attribution job`), which also waits until the job is RUNNING.
Running this file directly submits the job to the cluster at FLINK_REST_HOST:FLINK_REST_PORT and
prints its id; `--print-sql` prints the rendered SQL instead.

The Kafka and JDBC connectors and the project's UDF jar are not shipped with the job: they are on
the classpath of the cluster and of this client (FLINK_LIB_DIR, see attribution/deps.py), as in
the Compose image's /opt/flink/lib. Run directly, set FLINK_LIB_DIR=.stack/flink-lib first.
"""

from __future__ import annotations

import argparse
import sys

from attribution.config import Settings, describe
from attribution.sql import job_sql, render, statements


def job_configuration(settings: Settings, savepoint: str | None = None) -> dict[str, str]:
    """Flink options of the job itself (the cluster's own options are in conf/flink-config.yaml)."""
    # In application mode (the Kubernetes operator) the JobManager runs this script itself and
    # provides the executor; elsewhere the job goes to a session cluster's REST endpoint.
    remote = (
        {
            "execution.target": "remote",
            "rest.address": settings.flink_rest_host,
            "rest.port": str(settings.flink_rest_port),
        }
        if settings.job_submission == "remote"
        else {}
    )
    conf = {
        **remote,
        "pipeline.name": settings.job_name,
        "parallelism.default": str(settings.parallelism),
        # The Table runtime never mutates a record it has emitted, so chained operators can pass
        # records without copying them (the profile showed the copies at ~10 % of the CPU).
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


def submit(settings: Settings, savepoint: str | None = None, inserts: tuple[str, ...] | None = None) -> str:
    """Submit the job (detached) and return its id. `inserts` replaces the job's INSERT templates
    (the benchmark's pass-through baseline); a template may start with its own DDL statements."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env_settings = EnvironmentSettings.new_instance().in_streaming_mode().build()
    t_env = TableEnvironment.create(env_settings)
    for key, value in job_configuration(settings, savepoint).items():
        t_env.get_config().set(key, value)

    sql = job_sql(settings)
    for statement in sql.ddl:
        t_env.execute_sql(statement)
    statement_set = t_env.create_statement_set()
    if inserts:
        for template in inserts:
            *ddl, insert = statements(render(template, settings))
            for statement in ddl:
                t_env.execute_sql(statement)
            statement_set.add_insert_sql(insert)
    else:
        for statement in sql.inserts:
            statement_set.add_insert_sql(statement)
    result = statement_set.execute()
    return str(result.get_job_client().get_job_id())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog=describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--print-sql", action="store_true", help="print the rendered SQL and exit")
    parser.add_argument("--savepoint", help="restore from this savepoint or retained checkpoint path")
    parser.add_argument(
        "--insert-template",
        action="append",
        help="run this template (under code/) instead of the job's INSERTs; for benchmarks",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.print_sql:
        print(job_sql(settings).script())
        return 0
    print(submit(settings, args.savepoint, tuple(args.insert_template or ())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
