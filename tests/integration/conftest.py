"""Integration tests run the real job on a separate embedded stack (own ports, own STACK_DIR), started
fresh for the session and stopped at the end, so they never touch the stack of `make run`."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from attribution import job, stack
from attribution.config import PROJECT_ROOT, Settings


def _test_stack_env() -> dict[str, str]:
    env = {}
    for line in (PROJECT_ROOT / "tests" / "integration" / "test-stack.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    env["STACK_DIR"] = str(PROJECT_ROOT / env["STACK_DIR"])
    return env


TEST_STACK = _test_stack_env()
# Settings exported in the developer's shell (CLICKS_TOPIC=..., JOB_NAME=...) must not reach the
# tests: every setting is the default or the test stack's.
for field in dataclasses.fields(Settings):
    os.environ.pop(field.metadata["env"], None)
os.environ.update(TEST_STACK)


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    test_settings = Settings.from_env()
    stack.down(test_settings)  # leftovers of an interrupted run
    shutil.rmtree(test_settings.stack_path, ignore_errors=True)
    try:
        stack.up(test_settings)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(job, "submit", submit_in_this_process)
            yield test_settings
    finally:
        stack.down(test_settings)


def submit_in_this_process(
    settings: Settings, savepoint: str | None = None, output_sql: tuple[Path, ...] = (), timeout: float = 0
) -> str:
    """What job.submit does, through the same pipeline.submit, from this process's PyFlink client:
    its JVM starts once for the session instead of once per job (docs/testing.md). The
    keeper and `make job` still submit from a process of their own (test_faults, test_cli)."""
    from attribution import pipeline
    from attribution.deps import client_env

    os.environ.update(client_env(settings))  # read when the first TableEnvironment starts the JVM
    try:
        return pipeline.submit(settings, savepoint, output_sql)
    except Exception as error:  # Py4J's: as job.submit reports it
        raise job.JobError(f"job submission failed: {job.root_cause(str(error))}") from None
