"""One definition of what an operator reads: templates/messages.txt, for the page and the runner alike."""

from __future__ import annotations

import pytest

from warehouse_core.adapters.jinja_sentences import JinjaSentences
from warehouse_core.errors import Conflict, InvalidFile, PayloadTooLarge
from warehouse_core.usecases.sessions import REFUSALS

# Every refusal the core raises: the session's, and an upload on a day that already has data.
CORE_REFUSALS = sorted(set(REFUSALS.values()) | {"day_has_data", "retry_unknown"})
FALLBACK = "The request was refused"


@pytest.mark.parametrize("code", CORE_REFUSALS)
def test_every_refusal_the_core_raises_has_its_own_sentence_naming_the_day(code):
    sentence = JinjaSentences().text(code, day="2026-11-26")
    assert not sentence.startswith(FALLBACK)
    assert "2026-11-26" in sentence and "\n" not in sentence


def test_a_code_without_a_sentence_gets_the_fallback_that_names_it():
    assert JinjaSentences().text("something_new") == "The request was refused (something_new)."


def test_the_customers_messages_win(tmp_path):
    (tmp_path / "messages.txt").write_text(
        "{%- macro text(code) -%}{{ code }}: il giorno {{ kwargs.day }} ha già dei dati{%- endmacro -%}",
        encoding="utf-8",
    )
    assert (
        JinjaSentences(tmp_path).text("day_has_data", day="2026-11-26")
        == "day_has_data: il giorno 2026-11-26 ha già dei dati"
    )


def test_a_refusal_carries_its_code_and_values_not_a_sentence():
    error = Conflict(code="day_has_data", day="2026-11-26")
    assert (error.code, error.values) == ("day_has_data", {"day": "2026-11-26"})
    assert str(error) == "refused: day_has_data (day=2026-11-26)"


def test_an_upload_over_the_limit_carries_its_code_and_the_limit_not_a_sentence():
    error = PayloadTooLarge(limit_mb=1)
    assert (error.code, error.values) == ("too_large", {"limit_mb": 1})
    assert JinjaSentences().text(error.code, **error.values) == "The file is larger than the 1 MB upload limit."


def test_an_empty_file_carries_its_code_not_a_sentence():
    error = InvalidFile(code="empty_file")
    assert (error.code, error.values, error.problems) == ("empty_file", {}, [])
    assert JinjaSentences().text(error.code) == "The file is empty: there is nothing to import."
