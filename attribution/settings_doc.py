"""The settings table of docs/operations.md, generated from `Settings` (attribution/config.py).

Each setting's environment variable, default and meaning are the metadata `_setting(...)` stores on
its dataclass field, the same that `python -m attribution --help` prints: nothing is written twice.
`python -m attribution.settings_doc` rewrites the table between the markers of docs/operations.md
(`--check`: only say whether it is up to date); tests/unit/test_docs.py fails when it is stale.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from attribution.config import PROJECT_ROOT, Settings

OPERATIONS = PROJECT_ROOT / "docs" / "operations.md"
BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"
SECRET = "(secret)"
# A "<" that could open an HTML tag in Markdown ("<STACK_DIR>"); "<=" cannot.
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, no line breaks, no HTML tags."""
    return _TAG_START.sub("&lt;", text.replace("|", "\\|").replace("\n", " "))


def _shown_default(field: dataclasses.Field[Any]) -> str:
    if field.metadata.get("secret"):
        return SECRET
    value = _default(field)
    if value is None or value == "":
        return "(empty)"
    text = str(value)
    # A path inside the checkout (STACK_DIR) is shown relative to it: the table is the same on
    # every machine.
    root = str(PROJECT_ROOT)
    if text == root or text.startswith(root + "/"):
        text = text[len(root) + 1 :] or "."
    # In a code span only a pipe needs escaping (a table splits its cells before reading spans).
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def settings_table() -> str:
    """Every setting of `Settings` as a Markdown table: variable, default, meaning."""
    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for field in dataclasses.fields(Settings):
        env = field.metadata.get("env")
        if not env:
            continue  # not read from the environment
        rows.append(f"| `{env}` | {_shown_default(field)} | {_cell(str(field.metadata.get('doc', '')))} |")
    return "\n".join(rows)


def _markers(text: str) -> tuple[int, int]:
    """Where the table starts (after BEGIN) and where END stands."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN} and {END} are missing or out of order")
    return start + len(BEGIN), end


def with_table(text: str, table: str) -> str:
    """`text` with what stands between the markers replaced by `table`."""
    start, end = _markers(text)
    return f"{text[:start]}\n{table}\n{text[end:]}"


def table_in(text: str) -> str:
    """The table that stands between the markers of `text`."""
    start, end = _markers(text)
    return text[start:end].strip("\n")


def main(argv: list[str] | None = None, path: Path = OPERATIONS) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attribution.settings_doc",
        description="Rewrite the settings table of docs/operations.md from attribution/config.py.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale; change nothing")
    args = parser.parse_args(argv)
    text = path.read_text()
    updated = with_table(text, settings_table())
    shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
    if updated == text:
        print(f"{shown}: the settings table is up to date")
        return 0
    if args.check:
        print(f"{shown}: the settings table is stale: run `python -m attribution.settings_doc`")
        return 1
    path.write_text(updated)
    print(f"{shown}: settings table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
