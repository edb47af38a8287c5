"""Other tools drive the project through these make targets: they must exist."""

import re

from attribution.config import PROJECT_ROOT

CONTRACT = {"run", "up", "job", "datagen", "down", "test"}


def test_contract_targets_exist() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.MULTILINE))
    assert targets >= CONTRACT, CONTRACT - targets


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in (PROJECT_ROOT / "README.md").read_text()
