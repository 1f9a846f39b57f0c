"""Values of the domain: what is one of our file names."""

from __future__ import annotations

import datetime as dt

import pytest

from warehouse_core.model import FileStatus, ImportSummary, InboundFileName, Problem, safe_file_name


def test_a_letture_name_gives_its_day_and_declared_count():
    name = InboundFileName.parse("Letture20261126083015123_9.txt")
    assert name is not None
    assert (name.day, name.declared_count, name.expected_lines) == (dt.date(2026, 11, 26), 9, 10)


@pytest.mark.parametrize(
    "text",
    [
        "Letture20261126083015123_9.txt\n",  # '$' let a trailing newline through
        "Letture20261126083015123_9.txt\n.bak",
        "Letture20261126083015123_9.txtx",
        "xLetture20261126083015123_9.txt",
        "Letture٢٠٢٦١١٢٦083015123_9.txt",  # Arabic-Indic digits are digits to \d, not to the customer
        "Letture20261126083015123_٩.txt",
        "Letture2026112608301512_9.txt",
    ],
)
def test_anything_but_the_whole_name_is_not_ours(text):
    assert InboundFileName.parse(text) is None


def test_a_safe_file_name_is_the_base_name_in_safe_characters_without_a_leading_dot():
    assert safe_file_name("C:\\Users\\op\\Letture 1.txt") == "Letture_1.txt"
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("fattura (2).txt") == "fattura_2_.txt"
    assert safe_file_name("...env.") == "env."
    assert safe_file_name(".Xray") == "Xray"
    assert safe_file_name("a" * 200) == "a" * 160
    assert safe_file_name("a" * 200, limit=20) == "a" * 20


def test_an_import_summary_as_the_api_shows_it():
    summary = ImportSummary(
        file_name="Letture20261126083015123_9.txt",
        day=dt.date(2026, 11, 26),
        status=FileStatus.REJECTED,
        total_lines=10,
        stored_lines=0,
        ignored_lines=2,
        not_found=("600000004",),
        problems=(Problem(line=3, reason="quantity 'x' is not a whole number"),),
        problem_count=1,
    )
    assert summary.as_dict() == {
        "file": "Letture20261126083015123_9.txt",
        "day": "2026-11-26",
        "status": "rejected",
        "total_lines": 10,
        "stored_lines": 0,
        "ignored_lines": 2,
        "not_found": ["600000004"],
        "problems": [{"line": 3, "reason": "quantity 'x' is not a whole number"}],
        "problem_count": 1,
    }
