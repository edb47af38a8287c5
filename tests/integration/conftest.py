"""Integration tests run the real job on a separate embedded stack (own ports, own STACK_DIR), started
fresh for the session and stopped at the end, so they never touch the stack of `make run`."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator

import pytest

from attribution import stack
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
        yield test_settings
    finally:
        stack.down(test_settings)
