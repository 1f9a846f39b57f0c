"""The developers' page names code that exists: a function or setting it puts in backticks is not
one a later change removed (review 5a: cfc29c0 removed parsing.invoice_numbers, and the page still
tells how the import runs through it)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEVELOPERS = ROOT / "docs" / "developers.md"
CODE_SUFFIXES = {".py", ".sql", ".po", ".txt", ".html", ".toml"}


def code_text() -> str:
    files = [ROOT / "Makefile"]
    for folder in ("src", "tests", "bench", "devstack"):
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and path.suffix in CODE_SUFFIXES and path != Path(__file__).resolve()
        ]
    return "\n".join(path.read_text(encoding="utf-8", errors="replace") for path in files)


def test_every_snake_case_name_the_developers_page_shows_is_in_the_code():
    text = DEVELOPERS.read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"`([A-Za-z_][A-Za-z0-9]*_[A-Za-z0-9_]*)`", text)))
    code = code_text()
    assert names, "the page names no code at all"
    assert [name for name in names if not re.search(r"\b{}\b".format(re.escape(name)), code)] == []
