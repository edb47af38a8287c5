"""Integration tests run the real job on a separate embedded stack (own ports, own STACK_DIR), started
fresh for the session and stopped at the end, so they never touch the stack of `make run`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from attribution.config import PROJECT_ROOT

TEST_STACK = {
    "STACK_DIR": str(PROJECT_ROOT / ".stack" / "test"),
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "15432",
    "FLINK_REST_PORT": "18081",
    "FLINK_RPC_PORT": "16123",
    "FLINK_METRICS_PORTS": "9270-9280",
    "PROMETHEUS_PORT": "19090",
    # Fast checkpoints so that recovery tests do not wait long.
    "CHECKPOINT_INTERVAL_SECONDS": "3",
}
os.environ.update(TEST_STACK)

from attribution import stack  # noqa: E402
from attribution.config import Settings  # noqa: E402


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
