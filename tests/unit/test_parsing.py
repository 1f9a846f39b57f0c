from __future__ import annotations

import io
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import INCOMPLETE_SAMPLE, MALFORMED_SAMPLE, VALID_SAMPLE
from warehouse_core.model import InboundFileName
from warehouse_core.parsing import (
    CP1252,
    UTF8,
    ParseTally,
    inspect,
    normalise_categories,
    parse_line,
    parse_lines,
)


def parse(data: bytes):
    facts = inspect(io.BytesIO(data))
    tally = ParseTally()
    lines = list(parse_lines(io.BytesIO(data), facts.encoding, tally))
    return facts, tally, lines


def test_valid_sample_has_eight_lines_two_ignored_and_declared_count_plus_one():
    facts, tally, lines = parse(VALID_SAMPLE.read_bytes())
    assert facts.line_count == InboundFileName.parse(VALID_SAMPLE.name).expected_lines == 10
    assert (tally.total_lines, tally.valid_lines, tally.ignored_lines, tally.problem_count) == (10, 8, 2, 0)
    assert [line.invoice_number for line in lines][:3] == ["600000001", "600000002", "600000004"]
    assert lines[0].value == Decimal("120.50") and lines[0].quantity == 12
    assert lines[3].categories == ("carne", "pesce")
    assert lines[4].categories == ("surgelati",)
    assert lines[4].value == Decimal("70.7")


def test_malformed_sample_names_each_bad_line_and_its_reason():
    _, tally, _ = parse(MALFORMED_SAMPLE.read_bytes())
    assert [(p.line, p.reason) for p in tally.problems] == [
        (2, "invoice number '60000002' has 8 characters, expected 9"),
        (3, "quantity 'forty' is not a whole number"),
        (4, "value '70,7' uses a comma; the decimal separator is a dot"),
        (5, "has 3 fields separated by '|', expected 4"),
    ]


def test_incomplete_sample_has_fewer_lines_than_declared():
    facts, _, _ = parse(INCOMPLETE_SAMPLE.read_bytes())
    assert facts.line_count == 6 != InboundFileName.parse(INCOMPLETE_SAMPLE.name).expected_lines


def test_a_final_newline_adds_no_line_and_crlf_counts_like_lf():
    body = b"600000001|1|A|1\n600000002|2|B|2"
    assert inspect(io.BytesIO(body)).line_count == 2
    assert inspect(io.BytesIO(body + b"\n")).line_count == 2
    crlf = body.replace(b"\n", b"\r\n") + b"\r\n"
    facts, tally, lines = parse(crlf)
    assert facts.line_count == 2 and tally.valid_lines == 2
    assert lines[1].value == Decimal("2") and lines[1].description == "B"
    assert inspect(io.BytesIO(b"")).line_count == 0


def test_bom_is_allowed_and_cp1252_is_the_fallback():
    facts, _, lines = parse(b"\xef\xbb\xbf600000001|1|Caff\xc3\xa8|1.00")
    assert facts.encoding == UTF8 and lines[0].invoice_number == "600000001"
    assert lines[0].categories == ("caffè",)
    facts, _, lines = parse(b"600000001|1|Caff\xe8, Citt\xe0|1.00")
    assert facts.encoding == CP1252
    assert lines[0].categories == ("caffè", "città")


def test_categories_are_trimmed_folded_lower_cased_and_deduplicated():
    assert normalise_categories(" Frutta  Secca , frutta secca,, VERDURA ,Verdura ") == ("frutta secca", "verdura")
    assert normalise_categories("") == ()


def test_lines_not_starting_with_6_and_empty_lines_are_ignored_not_errors():
    assert parse_line(1, "500000003|1|x|1.00") is None
    assert parse_line(2, "X|only two fields") is None
    assert parse_line(3, "") is None
    assert parse_line(4, "   ") is None


def test_value_and_quantity_rules():
    assert parse_line(1, "600000001|0|a|-3.20").value == Decimal("-3.20")
    assert parse_line(1, "600000001|5|a|12").value == Decimal("12")
    assert "not a whole number" in parse_line(1, "600000001|-1|a|1").reason
    assert "not a whole number" in parse_line(1, "600000001|1.5|a|1").reason
    assert "too large" in parse_line(1, "600000001|1234567890123456789|a|1").reason
    assert "not a decimal number" in parse_line(1, "600000001|1|a|1e5").reason
    assert "not a decimal number" in parse_line(1, "600000001|1|a|").reason
    assert "NUL" in parse_line(1, "600000001|1|a\x00b|1").reason


def test_each_reason_names_the_value_at_fault():
    assert parse_line(7, "600000001|1|a\x00b|1").reason == "contains a NUL character"
    assert parse_line(7, "600000001|1234567890123456789|a|1").reason == "quantity '1234567890123456789' is too large"
    assert parse_line(7, "600000001|1|a|1e5").reason == "value '1e5' is not a decimal number"
    assert parse_line(7, "600000001|1|a|1e5").line == 7


def test_leading_zeros_do_not_make_a_quantity_too_large():
    eighteen_digits = "123456789012345678"
    line = parse_line(1, "600000001|00000{}|a|1".format(eighteen_digits))
    assert line.quantity == int(eighteen_digits)


def test_every_problem_is_counted_and_the_first_hundred_are_reported():
    _, tally, lines = parse(b"\n".join([b"600000001|x|a|1"] * 101))
    assert lines == [] and tally.problem_count == 101
    assert [problem.line for problem in tally.problems] == list(range(1, 101))


class LazyFile(io.RawIOBase):
    """A 200 MB file made on demand, counting the bytes anybody read from it."""

    LINE = b"600000001|1|Frutta|1.00\n"

    def __init__(self, size: int = 200 * 1024 * 1024) -> None:
        self.size = size
        self.delivered = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.size - self.delivered)
        pattern = (self.LINE * (count // len(self.LINE) + 2))[self.delivered % len(self.LINE) :][:count]
        buffer[:count] = pattern
        self.delivered += count
        return count


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=64))
def test_lines_are_the_same_whatever_the_block_size(data, block_size):
    encoding = inspect(io.BytesIO(data)).encoding
    whole, in_blocks = ParseTally(), ParseTally()
    expected = list(parse_lines(io.BytesIO(data), encoding, whole))
    assert list(parse_lines(io.BytesIO(data), encoding, in_blocks, block_size=block_size)) == expected
    assert in_blocks == whole


def test_parsing_streams_reading_only_what_the_lines_asked_for_need():
    source = LazyFile()
    lines = parse_lines(io.BufferedReader(source), UTF8, ParseTally())
    first = [next(lines) for _ in range(1000)]
    assert first[-1].line_number == 1000
    assert source.delivered < 1024 * 1024


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_lines_or_problems_never_an_exception(data):
    facts, tally, lines = parse(data)
    assert tally.total_lines == facts.line_count
    assert tally.valid_lines + tally.ignored_lines + tally.problem_count == tally.total_lines
    assert len(lines) == tally.valid_lines


line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(line_text, line_text, line_text, line_text), max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_any_text_file_parses_with_one_outcome_per_line(rows, newline):
    data = newline.join("|".join(row) for row in rows).encode("utf-8")
    facts, tally, _ = parse(data)
    assert tally.valid_lines + tally.ignored_lines + tally.problem_count == tally.total_lines
