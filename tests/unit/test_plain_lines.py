"""The block fast path of ``parse_blocks`` against the rule itself, ``parse_line``, line by line.

A plain line skips ``parse_line`` and is stored as the file spells it, so for any file the blocks
must give exactly what reading the file line by line gives: the same valid lines, ignored lines and
problems (with their reasons, in order), a plain line's text equal to what str(int) and
str(Decimal) print for its fields, nothing in it that COPY would escape, and the same category
links. Each test below fails when the fast path takes one line it should have left to the rule.
"""

from __future__ import annotations

import codecs
import io
import re
from collections import defaultdict
from typing import Dict, List, Tuple

from hypothesis import example, given, settings
from hypothesis import strategies as st

from warehouse_core.adapters.postgres.files_and_lines import copy_row, copy_rows
from warehouse_core.model import InvoiceLine
from warehouse_core.parsing import (
    CP1252,
    UTF8,
    CategoryLinks,
    LineBlock,
    ParseTally,
    inspect,
    parse_blocks,
    parse_line,
)

COPY_ESCAPED = "\t\n\r\\\x00"


def line_by_line(data: bytes, encoding: str) -> Tuple[List[InvoiceLine], ParseTally]:
    """The rule applied the plain way: the whole file decoded, split at LF, each line's trailing
    CRs dropped, then ``parse_line``."""
    text = data.decode("utf-8-sig") if encoding == UTF8 else data.decode(encoding, "replace")
    lines = text.split("\n") if text else []
    if text.endswith("\n"):
        lines.pop()  # a final newline adds no line
    tally, valid = ParseTally(), []
    for number, line in enumerate(lines, start=1):
        tally.total_lines += 1
        outcome = parse_line(number, line.rstrip("\r"))
        if isinstance(outcome, InvoiceLine):
            tally.valid_lines += 1
            valid.append(outcome)
        elif outcome is None:
            tally.ignored_lines += 1
        else:
            tally.add_problem(outcome)
    return valid, tally


def as_stored(line: InvoiceLine) -> Tuple[object, ...]:
    """What reaches the database, the value's scale included (Decimal("1.5") == Decimal("1.50"))."""
    return (line.line_number, line.invoice_number, str(line.quantity), line.description, str(line.value))


def assert_blocks_agree_with_the_rule(data: bytes, block_size: int) -> List[LineBlock]:
    encoding = inspect(io.BytesIO(data)).encoding
    expected, expected_tally = line_by_line(data, encoding)
    tally = ParseTally()
    blocks = list(parse_blocks(io.BytesIO(data), encoding, tally, block_size=block_size))
    assert tally == expected_tally
    by_number = {line.line_number: line for line in expected}
    lines = [line for block in blocks for line in block.lines()]
    assert [as_stored(line) for line in lines] == [as_stored(line) for line in expected]
    assert [line.categories for line in lines] == [line.categories for line in expected]
    for block in blocks:
        assert len(block.numbers) == len(block.plain) == len(block.invoices)
        for number, text, invoice in zip(block.numbers, block.plain, block.invoices):
            rule = by_number[number]
            assert text == "|".join(as_stored(rule)[1:]), "plain line {} is not stored as the rule stores it".format(
                number
            )
            assert invoice == rule.invoice_number
            assert not set(text) & set(COPY_ESCAPED)
    links = CategoryLinks()
    for block in blocks:
        links.add(block)
    expected_links: Dict[str, List[int]] = defaultdict(list)
    for line in expected:
        for name in line.categories:
            expected_links[name].append(line.line_number)
    assert {name: list(numbers) for name, numbers in links.take().items()} == expected_links
    return blocks


INVOICES = [
    "600000001",
    "6000000A1",
    "6abcdefgh",
    " 600000001",
    "600000001 ",
    "\t600000001",
    "\u00a0600000001",
    "\x1c600000001",
    "\ufeff600000001",
    "60000001",
    "6000000001",
    "6",
    "500000001",
    "",
    "x",
    "\uff1600000001",  # a full-width 6
    "60000\x00001",
    "6000 0001",
    "60000001\t",
    "6000000\\1",
    "6000000\r1",
]
QUANTITIES = [
    "0",
    "1",
    "42",
    "00",
    "01",
    "007",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1.5",
    "\uff11",
    "\u0663",
    "123456789012345678",
    "1234567890123456789",
    "0000000000000000001",
    "9999999999999999999",
    "",
]
VALUES = [
    "0",
    "12",
    "12.5",
    "12.50",
    "-3.20",
    "+1",
    "-0",
    "-0.0",
    "00.5",
    "0.5",
    "0.05",
    ".5",
    "5.",
    "1e5",
    "1E5",
    "1,5",
    " 1.5",
    "1.5 ",
    "0.000001",
    "0.0000001",
    "0.0000010",
    "-0.0000001",
    "0.000000",
    "0.0000000",
    "12345678901234567890.123456789",
    "\u0663",
    "",
]
# Each field is usually one the fast path takes, so that a line with one odd field is common.
good_invoice = st.from_regex(r"6[0-9A-Za-z]{8}", fullmatch=True)
good_quantity = st.integers(min_value=0, max_value=10**18 - 1).map(str)
good_value = st.from_regex(r"-?(0|[1-9][0-9]{0,6})(\.[0-9]{1,7})?", fullmatch=True)
good_description = st.text(alphabet=st.sampled_from(list("aBz ,\u00e8")), max_size=12)
odd_description = st.one_of(
    st.text(alphabet=st.sampled_from(list("aB ,\t\\\r\x00\u00a0\x1c\u03a3\u0130\u00e8\u2028")), min_size=1, max_size=8),
    st.text(max_size=8),
)


odd_fields = (
    st.one_of(st.sampled_from(INVOICES), st.text(max_size=10)),
    st.one_of(
        st.sampled_from(QUANTITIES),
        st.integers(min_value=10**17, max_value=10**20).map(str),
        st.from_regex(r"[+-]?[0-9]{1,20}", fullmatch=True),
        st.text(max_size=4),
    ),
    odd_description,
    st.one_of(
        st.sampled_from(VALUES), st.from_regex(r"[+-]?[0-9]{0,3}(\.[0-9]{0,9})?", fullmatch=True), st.text(max_size=6)
    ),
)


@st.composite
def one_odd_field(draw: st.DrawFn) -> str:
    """A line the fast path takes, but for one field drawn from the odd ones."""
    fields = [draw(good_invoice), draw(good_quantity), draw(good_description), draw(good_value)]
    odd = draw(st.integers(min_value=0, max_value=3))
    fields[odd] = draw(odd_fields[odd])
    return "|".join(fields)


four_fields = st.one_of(
    st.tuples(good_invoice, good_quantity, good_description, good_value).map("|".join),
    one_odd_field(),
    st.tuples(*odd_fields).map("|".join),
)
a_line = st.one_of(
    four_fields, four_fields, four_fields, four_fields.map(lambda line: line + "|"), st.text(max_size=20)
)
line_end = st.sampled_from(["\n", "\n", "\r\n", "\r\r\n"])


@st.composite
def a_file(draw: st.DrawFn) -> str:
    lines = draw(st.lists(a_line, min_size=1, max_size=40))
    text = "".join(line + draw(line_end) for line in lines)
    if lines and draw(st.booleans()):
        text = text[: -1 if text.endswith("\n") else None]  # no final newline, as the customer writes it
        text = text[:-1] if text.endswith("\r") and draw(st.booleans()) else text
    return text


@settings(max_examples=1000, deadline=None)
@given(one_odd_field(), line_end)
@example("600000001|1234567890123456789|a|1", "\n")  # one digit too many
@example("600000001|01|a|1", "\n")  # int() drops the zero
@example("600000001|1|a|00.5", "\n")  # Decimal() drops the zero
@example("600000001|1|a|+1", "\n")  # Decimal() drops the sign
@example("600000001|1|a|0.0000001", "\n")  # Decimal() prints 1E-7
@example("600000001|1|a\x00|1", "\n")  # a NUL is a problem
@example("600000001|1|a\\b|1", "\r\n")  # COPY would escape these three
@example("600000001|1|a\tb|1", "\n")
@example("600000001|1|a\rb|1", "\n")
@example("60000001|1|a|1", "\n")  # eight characters
@example("60000001 |1|a|1", "\n")  # eight characters once trimmed
@example(" 600000001|1|a|1", "\n")  # valid once trimmed, but not plain
def test_any_line_gives_in_blocks_what_the_rule_gives(line, end):
    assert_blocks_agree_with_the_rule((line + end).encode("utf-8", "surrogatepass"), 1 << 18)


@settings(max_examples=400, deadline=None)
@given(a_file(), st.booleans(), st.integers(min_value=1, max_value=80))
def test_utf8_files_give_in_blocks_what_the_rule_gives_line_by_line(text, bom, block_size):
    assert_blocks_agree_with_the_rule(
        (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8", "surrogatepass"), block_size
    )


@settings(max_examples=300, deadline=None)
@given(a_file(), st.integers(min_value=1, max_value=80))
def test_cp1252_files_give_in_blocks_what_the_rule_gives_line_by_line(text, block_size):
    data = text.encode("cp1252", "replace") + b"\n600000001|1|caff\xe8 \x81\x8d|1.50"  # not UTF-8: cp1252
    assert inspect(io.BytesIO(data)).encoding == CP1252
    assert_blocks_agree_with_the_rule(data, block_size)


byte_piece = st.sampled_from(
    [b"600000001|1|Frutta|1.50", b"6", b"0", b"|", b"\n", b"\r", b"\t", b"\\", b"\x00", b" ", b"\xa0", b"\x81"]
    + [b"\xe8", b"\xc3\xa8", b"\xef\xbb\xbf", b".", b"-", b"+", b",", b"5"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(byte_piece, max_size=60), st.integers(min_value=1, max_value=80))
def test_any_bytes_give_in_blocks_what_the_rule_gives_line_by_line(pieces, block_size):
    assert_blocks_agree_with_the_rule(b"".join(pieces), block_size)


@settings(max_examples=300, deadline=None)
@given(a_file(), st.integers(min_value=1, max_value=80))
def test_copy_rows_of_a_block_are_the_rows_of_its_lines_field_by_field(text, block_size):
    # PostgreSQL's side of the fast path: a plain line's row, put together from its text, is the
    # row copy_row writes from its InvoiceLine (the rows of a block may come in another order).
    data = text.encode("utf-8", "surrogatepass")
    unusual = {"600000001": "not_found", "6000000A1": "already_exported"}
    prefix = "7\t2026-11-26\t"
    for block in parse_blocks(io.BytesIO(data), inspect(io.BytesIO(data)).encoding, ParseTally(), block_size):
        expected = [prefix + copy_row(line, unusual.get(line.invoice_number, "valid")) for line in block.lines()]
        rows = copy_rows(prefix, block, unusual)
        assert rows.endswith("\n") and sorted(row + "\n" for row in rows.split("\n")[:-1]) == sorted(expected)


def test_the_usual_lines_are_plain_and_the_others_go_through_the_rule():
    data = (
        "600000001|12|Frutta, Verdura|120.50\n"
        "500000002|1|not ours|1\n"
        "600000003|007|leading zeros|1\n"
        " 600000004|1|a blank to trim|1\n"
        "600000005|1|tab\there|1\n"
        "600000006|1|a|+1\n"
        "600000007|1|a|0.0000001\n"
        "600000008|0|Caffè|-0.05\r\n"
        "600000009|1|last, no newline|3"
    ).encode("utf-8")
    [block] = assert_blocks_agree_with_the_rule(data, 1 << 18)
    assert block.numbers == [1, 8, 9]
    assert block.plain == [
        "600000001|12|Frutta, Verdura|120.50",
        "600000008|0|Caffè|-0.05",
        "600000009|1|last, no newline|3",
    ]
    assert [line.line_number for line in block.others] == [3, 4, 5, 6, 7]


def test_runs_longer_than_one_match_takes_are_taken_in_parts():
    lines = ["60000{:04d}|{}|Frutta, Pane|{}.50".format(n, n, n) for n in range(1, 1301)]
    lines[700] = " " + lines[700]  # a blank to trim: parse_line's
    lines[1000] = "500000000|1|not ours|1"
    [block] = assert_blocks_agree_with_the_rule("\n".join(lines).encode("utf-8"), 1 << 20)
    assert len(block.plain) == 1298 and [line.line_number for line in block.others] == [701]


def test_blank_in_a_regular_expression_is_what_str_strip_removes():
    # _NOT_OURS trusts \s to be exactly str.isspace(), the blanks strip() removes.
    blank = re.compile(r"\s")
    assert [c for c in range(0x110000) if bool(blank.match(chr(c))) != chr(c).isspace()] == []
