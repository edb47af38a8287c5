"""The documentation stays true to the code: the settings table is generated from config, the
README stays short and names the two commands, and every link between pages leads somewhere."""

import re
from pathlib import Path

import pytest

from attribution import settings_doc
from attribution.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
README_MAX_LINES = 200

# [text](target) and ![alt](target); the target ends at a space (a title follows) or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that are files of this repository (not URLs, not
    anchors within the page), anchors stripped; code blocks and code spans hold no links."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith(("#", "//")):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_settings_table_is_generated_from_config() -> None:
    text = settings_doc.OPERATIONS.read_text()
    assert settings_doc.table_in(text) == settings_doc.settings_table(), (
        "docs/operations.md's settings table differs from attribution/config.py: "
        "run `.venv/bin/python -m attribution.settings_doc` and commit the result"
    )


def test_settings_table_hides_secrets() -> None:
    table = settings_doc.settings_table()
    password = next(line for line in table.splitlines() if line.startswith("| `POSTGRES_PASSWORD` |"))
    assert settings_doc.SECRET in password


def test_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, at most {README_MAX_LINES}: move detail to docs/"
    )


def test_readme_names_the_two_commands_as_code() -> None:
    text = README.read_text()
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    code = "\n".join([*blocks, *CODE_SPAN.findall(FENCE.sub("", text))])
    for command in ("make run", "make test"):
        assert re.search(rf"(^|[\s`]){command}\b", code, re.MULTILINE), (
            f"README.md must show `{command}` as code (a fenced block or inline code)"
        )


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_relative_links_lead_to_files(page: Path) -> None:
    missing = [
        target
        for target in relative_links(page.read_text())
        if target and not (page.parent / target).exists()
    ]
    assert not missing, f"{page.relative_to(PROJECT_ROOT)} links to missing files: {missing}"


def test_link_parser() -> None:
    text = (
        "[a](docs/a.md) ![img](b.png) [c](c.md#part) [web](https://example.com) [here](#top)\n"
        '`[not](x.md)`\n```\n[nor](y.md)\n```\n[t](d.md "title")'
    )
    assert relative_links(text) == ["docs/a.md", "b.png", "c.md", "d.md"]
