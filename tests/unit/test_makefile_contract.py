"""Other tools drive the project through these make targets: they must exist, be listed by
`make help`, and be what the README and CI run."""

import re
import subprocess

from attribution.config import PROJECT_ROOT

CONTRACT = {"run", "up", "job", "datagen", "down", "test"}
LISTED = CONTRACT | {"unit-test", "integration-test", "status", "bench"}


def commands(text: str, markdown: bool = False) -> list[str]:
    """The command lines of a shell script, or of a Markdown file's shell code blocks; comments
    dropped."""
    lines, in_block, shell = [], False, not markdown
    for line in text.splitlines():
        if markdown and line.startswith("```"):
            in_block = not in_block
            shell = in_block and line[3:].strip() in {"", "bash", "sh", "console"}
        elif shell:
            lines.append(line.split("#", 1)[0].strip().removeprefix("$ "))
    return [line for line in lines if line]


def test_contract_targets_are_listed_by_make_help() -> None:
    listed = subprocess.run(
        ["make", "-s", "help"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    targets = set(re.findall(r"^\s+make (\S+)", listed.stdout, re.MULTILINE))
    assert targets >= LISTED, LISTED - targets


def test_contract_targets_have_recipes_make_accepts() -> None:
    for target in sorted(CONTRACT):
        dry = subprocess.run(["make", "-n", target], cwd=PROJECT_ROOT, capture_output=True, text=True)
        assert dry.returncode == 0 and dry.stdout.strip(), (target, dry.stderr)


def without_assignments(command: str) -> str:
    """A command line without the environment assignments before it (`X=1 make test`)."""
    return re.sub(r"^(\w+=\S*\s+)+", "", command)


def test_ci_and_the_readme_run_the_same_test_command() -> None:
    ci = [without_assignments(c) for c in commands((PROJECT_ROOT / ".ci" / "run").read_text())]
    assert "make test" in ci, ci
    readme = commands((PROJECT_ROOT / "README.md").read_text(), markdown=True)
    assert "make test" in readme and "make run" in readme, readme
