"""CategoryLinks against the plainest reading of the rule: each line's categories as ``parse_line``
gives them, each category's line numbers ascending and once, whatever the blocks and the takes.

The links are gathered from blocks as ``parse_blocks`` hands them over (plain lines as text, the
others parsed, both kinds interleaved in line order) and taken a chunk at a time, so these tests
draw the blocks and the takes directly: descriptions with repeated, blank, empty and differently
cased items, others lines between plain ones, a take after any block.
"""

from __future__ import annotations

from array import array
from typing import Dict, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse_core.model import InvoiceLine
from warehouse_core.parsing import LINE_NUMBER_TYPE, CategoryLinks, LineBlock, parse_line

# Few items, spelled many ways, so that a description names one category twice, or none.
item = st.sampled_from(
    ["Frutta", "frutta", " FRUTTA ", "Pane", "pane  secco", " Pane Secco", "", " ", "\u00a0", "Caff\u00e8"]
)
description = st.lists(item, min_size=1, max_size=4).map(",".join)
# A line as the block keeps it: plain (its text) or another valid line (parsed).
a_line = st.tuples(st.booleans(), description)


def plain_text(number: int, described: str) -> str:
    return "6{:08d}|{}|{}|1.5".format(number, number % 7, described)


def other_line(number: int, described: str) -> InvoiceLine:
    # A line the fast path leaves to the rule (a blank to trim), parsed by the rule.
    line = parse_line(number, " " + plain_text(number, described))
    assert isinstance(line, InvoiceLine)
    return line


def as_blocks(lines: List[Tuple[bool, str]], cuts: List[int]) -> List[Tuple[LineBlock, List[InvoiceLine]]]:
    """The lines numbered 1.. in blocks ending after each cut, each with what the rule makes of its lines."""
    blocks = []
    start = 0
    for end in sorted(set(cuts) | {len(lines)}):
        block = LineBlock([], [], [], [])
        rule = []
        for number in range(start + 1, end + 1):
            plain, described = lines[number - 1]
            if plain:
                text = plain_text(number, described)
                block.numbers.append(number)
                block.plain.append(text)
                block.invoices.append(text[:9])
                rule.append(parse_line(number, text))
            else:
                block.others.append(other_line(number, described))
                rule.append(block.others[-1])
        blocks.append((block, rule))
        start = end
    return blocks


def expected_links(rule: List[InvoiceLine]) -> Dict[str, List[int]]:
    links: Dict[str, List[int]] = {}
    for line in sorted(rule, key=lambda each: each.line_number):
        for name in line.categories:
            numbers = links.setdefault(name, [])
            if not numbers or numbers[-1] != line.line_number:
                numbers.append(line.line_number)
    return links


@settings(max_examples=500, deadline=None)
@given(st.lists(a_line, max_size=40), st.lists(st.integers(min_value=0, max_value=40), max_size=6), st.data())
def test_links_are_each_lines_categories_once_ascending_whatever_the_blocks_and_takes(lines, cuts, data):
    blocks = as_blocks(lines, [cut for cut in cuts if cut <= len(lines)])
    links = CategoryLinks()
    pending: List[InvoiceLine] = []
    for block, rule in blocks:
        links.add(block)
        pending += rule
        if data.draw(st.booleans(), label="take after this block"):
            taken = links.take()
            assert all(
                isinstance(numbers, array) and numbers.typecode == LINE_NUMBER_TYPE for numbers in taken.values()
            )
            assert {name: list(numbers) for name, numbers in taken.items()} == expected_links(pending)
            pending = []
    assert {name: list(numbers) for name, numbers in links.take().items()} == expected_links(pending)
    assert links.take() == {}


def test_a_line_naming_a_category_twice_links_it_once_and_empty_items_link_nothing():
    block = LineBlock(
        [1, 3],
        [plain_text(1, "Frutta, frutta ,, FRUTTA"), plain_text(3, " , ")],
        ["600000001", "600000003"],
        [other_line(2, "Pane,pane,frutta")],
    )
    links = CategoryLinks()
    links.add(block)
    assert {name: list(numbers) for name, numbers in links.take().items()} == {"frutta": [1, 2], "pane": [2]}
