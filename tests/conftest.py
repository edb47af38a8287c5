"""For every test: a developer's .env (read by `make run` and the CLI) must not reach the tests; and
where every test must run (CI: TESTS_MUST_RUN=1, set by .ci/run), a skipped test fails."""

import os
from collections.abc import Generator

import pytest

from attribution.config import ENV_FILE_VARIABLE

os.environ[ENV_FILE_VARIABLE] = ""
# .ci/run installs what every test needs (iptables, tmux, npm, a locale, promtool): there, a test
# that skips for want of one is a check that silently stopped running.
TESTS_MUST_RUN = os.environ.get("TESTS_MUST_RUN") == "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if TESTS_MUST_RUN and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, where every test must run (TESTS_MUST_RUN=1): {reason}"
    return report
