"""Values of the domain: what is one of our file names."""
from __future__ import annotations

import datetime as dt

import pytest

from warehouse_core.model import InboundFileName


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
