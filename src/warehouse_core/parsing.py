"""Bytes of a ``Letture`` file in, invoice lines and problems out.

Everything here streams: memory stays flat however long the file is. A file's facts (size,
sha256, line count, encoding) are counted by ``FactsCounter`` as its bytes arrive (``inspect``
does the same for a file already on disk); the archived file is then read once, by ``parse_blocks``.

A million lines a day go through here while PostgreSQL takes them in, so the common line costs
no Python statement of its own: one regular expression over a block of lines finds the runs of
*plain* lines (valid, nothing to trim, numbers spelled as ``int`` and ``Decimal`` print them) and
of lines that are plainly not ours; everything else goes through ``parse_line``, the rule itself.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from array import array
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import compress, repeat
from operator import itemgetter
from typing import BinaryIO, Callable, Dict, Iterable, Iterator, List, Tuple, Union

from warehouse_core.model import InvoiceLine, Problem

CHUNK_SIZE = 1 << 20
# Lines are read in blocks of about this many bytes, decoded and split a block at a time.
BLOCK_SIZE = 256 * 1024
MAX_REPORTED_PROBLEMS = 100
FIELD_SEPARATOR = "|"
INVOICE_LENGTH = 9
MAX_QUANTITY_DIGITS = 18  # what a bigint column holds
UTF8 = "utf-8-sig"
CP1252 = "cp1252"
# A day's file spells its few dozen categories a few hundred ways: each spelling is normalised once.
NORMALISED_CACHE_SIZE = 10_000
_NORMALISED: Dict[str, str] = {}
# Lines of a day's file repeat their descriptions: each is split and normalised once.
_CATEGORIES: Dict[str, Tuple[str, ...]] = {}

# InvoiceLine(...) through its generated __new__ costs a Python call per line; this is what it does.
_new_tuple = tuple.__new__
_VALUE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)

# A plain line is valid and is stored exactly as the file spells it: the invoice has no blank to
# trim, the quantity is spelled as str(int(quantity)) spells it (at most 18 digits, no leading
# zero), the value as str(Decimal(value)) does (no '+', no leading zero, and not six zeros after
# "0.", which Decimal prints with an exponent), and no field holds a tab, CR, NUL or backslash
# (those that COPY would escape). ``{description}`` is filled in below.
_PLAIN_LINE = (
    r"6[0-9A-Za-z]{{8}}\|(?:0|[1-9][0-9]{{0,17}})\|{description}\|"
    r"-?(?:[1-9][0-9]*(?:\.[0-9]+)?|0(?:\.(?!000000)[0-9]+)?)"
)
# A line that plainly is not ours: its first character is no blank and no 6, so its trimmed invoice
# does not start with 6 (``\s`` is exactly what str.strip() removes); or it is empty.
_NOT_OURS = r"(?:[^6\s][^\n]*)?"
# Consecutive lines, each ending in "\n", that are plain or not ours; it stops before any other
# line. At most 500 at a time: the engine keeps a little state for each repetition it may go back on.
_RUN = r"(?:(?:{}|{})\n){{0,500}}"
_PLAIN_RUN = re.compile(_RUN.format(_PLAIN_LINE.format(description=r"[^|\n\t\r\\\x00]*"), _NOT_OURS))
# The same for a block that holds none of those characters anywhere (nearly every block): a
# simpler description for the regular expression engine to check, character by character.
_PLAIN_RUN_IN_CLEAN_TEXT = re.compile(_RUN.format(_PLAIN_LINE.format(description=r"[^|\n]*"), _NOT_OURS))
_ESCAPED_IN_COPY = ("\t", "\r", "\\", "\x00")
_INVOICE_OF_PLAIN = itemgetter(slice(0, INVOICE_LENGTH))
# Line numbers as stored in the links' arrays (4-byte integers).
LINE_NUMBER_TYPE = "i"


@dataclass(frozen=True)
class FileFacts:
    """What one pass over the raw bytes tells about a file."""

    size: int
    sha256: str
    line_count: int
    encoding: str


class FactsCounter:
    """The facts of a file fed to it a block at a time, as the bytes arrive: size, sha256, line
    count (a final newline adds no line) and encoding, without reading anything back."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._utf8_valid = True
        self.size = 0
        self._newlines = 0
        self._last_byte = b""

    def update(self, block: bytes) -> None:
        if not block:
            return
        self._digest.update(block)
        self.size += len(block)
        self._newlines += block.count(b"\n")
        self._last_byte = block[-1:]
        if self._utf8_valid:
            try:
                self._utf8.decode(block)
            except UnicodeDecodeError:
                self._utf8_valid = False

    def facts(self) -> FileFacts:
        utf8_valid = self._utf8_valid
        if utf8_valid:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8_valid = False
        return FileFacts(
            size=self.size,
            sha256=self._digest.hexdigest(),
            line_count=self._newlines + (1 if self.size and self._last_byte != b"\n" else 0),
            encoding=UTF8 if utf8_valid else CP1252,
        )


def inspect(stream: BinaryIO) -> FileFacts:
    """Size, sha256, line count (a final newline adds no line) and encoding of a file."""
    counter = FactsCounter()
    for block in iter(lambda: stream.read(CHUNK_SIZE), b""):
        counter.update(block)
    return counter.facts()


@dataclass
class ParseTally:
    """Counts kept while ``parse_blocks`` streams; read it once the lines are consumed."""

    total_lines: int = 0
    valid_lines: int = 0
    ignored_lines: int = 0
    problem_count: int = 0
    problems: List[Problem] = field(default_factory=list)

    def add_problem(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)


class LineBlock:
    """The valid lines of a stretch of the file, in line order within each kind: ``plain`` lines
    as the file spells them (``invoice|quantity|description|value``, see ``_PLAIN_LINE``), with
    their ``numbers`` and ``invoices``; and ``others``, every other valid line, parsed."""

    __slots__ = ("numbers", "plain", "invoices", "others")

    def __init__(self, numbers: List[int], plain: List[str], invoices: List[str], others: List[InvoiceLine]) -> None:
        self.numbers = numbers
        self.plain = plain
        self.invoices = invoices
        self.others = others

    def __len__(self) -> int:
        return len(self.plain) + len(self.others)

    def lines(self) -> List[InvoiceLine]:
        """Every valid line of the block as an InvoiceLine, in line order."""
        plain = [_plain_invoice_line(number, text) for number, text in zip(self.numbers, self.plain)]
        return sorted(plain + self.others) if self.others and plain else plain or self.others

    def descriptions(self) -> List[str]:
        """The description of each plain line (the third of its four fields)."""
        return [line.split(FIELD_SEPARATOR, 3)[2] for line in self.plain]


def _plain_invoice_line(number: int, text: str) -> InvoiceLine:
    invoice, quantity, description, value = text.split(FIELD_SEPARATOR)
    return _new_tuple(
        InvoiceLine, (number, invoice, int(quantity), description, Decimal(value), normalise_categories(description))
    )


def blocks_of(lines: Iterable[InvoiceLine], size: int = 10_000) -> Iterator[LineBlock]:
    """Lines parsed elsewhere (or made by hand) as blocks of at most ``size``, lazily."""
    batch: List[InvoiceLine] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield LineBlock([], [], [], batch)
            batch = []
    if batch:
        yield LineBlock([], [], [], batch)


def parse_blocks(
    stream: BinaryIO, encoding: str, tally: ParseTally, block_size: int = BLOCK_SIZE
) -> Iterator[LineBlock]:
    """The file's valid lines a block at a time; ignored lines and problems are counted in ``tally``
    (a block's counts are in before it is handed over)."""
    codec, errors = _decoding(encoding)
    number = 1  # of the block's first line
    for raw in _line_blocks(stream, encoding, block_size):
        text = raw.decode(codec, errors)  # a block ends at a line's end: it decodes as its lines would
        if "\r" in text:
            # One CR less before each LF: parse_line gets each line with its trailing CRs stripped anyway.
            text = text.replace("\r\n", "\n")
        if not text.endswith("\n"):
            text += "\n"  # the file's last line: "\n" ends every line here
        lines, problems_before = text.count("\n"), tally.problem_count
        block = _parse_block(text, number, tally)
        number += lines
        tally.total_lines += lines
        tally.valid_lines += len(block)
        tally.ignored_lines += lines - len(block) - (tally.problem_count - problems_before)
        if len(block):
            yield block


def _parse_block(text: str, number: int, tally: ParseTally) -> LineBlock:
    """The valid lines of ``text`` (whole lines, each ending in "\n", the first numbered ``number``):
    runs of plain lines and lines not ours as they are, each other line through ``parse_line``."""
    runs = _PLAIN_RUN if any(character in text for character in _ESCAPED_IN_COPY) else _PLAIN_RUN_IN_CLEAN_TEXT
    block = LineBlock([], [], [], [])
    start = 0
    while start < len(text):
        end = runs.match(text, start).end()  # type: ignore[union-attr]  # it matches "" at least
        if end > start:
            number = _add_plain_run(block, text[start:end], number)
            start = end
            continue
        end = text.index("\n", start)
        outcome = parse_line(number, text[start:end].rstrip("\r"))
        number, start = number + 1, end + 1
        if isinstance(outcome, InvoiceLine):
            block.others.append(outcome)
        elif outcome is not None:
            tally.add_problem(outcome)
    return block


def _add_plain_run(block: LineBlock, run: str, number: int) -> int:
    """The plain lines of ``run`` into ``block`` (the others in it are not ours); the next line's number."""
    lines = run.split("\n")
    lines.pop()  # after the run's last "\n"
    ours = list(map(str.startswith, lines, repeat("6")))
    plain = list(compress(lines, ours))
    block.plain += plain
    block.numbers += compress(range(number, number + len(lines)), ours)
    block.invoices += map(_INVOICE_OF_PLAIN, plain)
    return number + len(lines)


def parse_lines(
    stream: BinaryIO, encoding: str, tally: ParseTally, block_size: int = BLOCK_SIZE
) -> Iterator[InvoiceLine]:
    """Yield the file's valid invoice lines; count ignored lines and record problems in ``tally``."""
    for block in parse_blocks(stream, encoding, tally, block_size):
        yield from block.lines()


def _line_blocks(stream: BinaryIO, encoding: str, block_size: int) -> Iterator[bytes]:
    """The file in blocks of whole lines (the last may lack its line break), without the BOM."""
    rest = stream.read(max(block_size, len(codecs.BOM_UTF8)))
    if encoding == UTF8 and rest.startswith(codecs.BOM_UTF8):
        rest = rest[len(codecs.BOM_UTF8) :]
    while True:
        chunk = stream.read(block_size)
        if not chunk:
            break
        block = rest + chunk
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if cut:
            yield block[:cut]
    if rest:
        yield rest


def _decoding(encoding: str) -> Tuple[str, str]:
    """Codec and error handling for one line (the BOM is gone: a U+FEFF further on is text)."""
    return ("utf-8", "strict") if encoding == UTF8 else (encoding, "replace")


def parse_line(number: int, text: str) -> Union[InvoiceLine, Problem, None]:
    """One line: an InvoiceLine, a Problem, or None for a line that is not ours."""
    fields = text.split(FIELD_SEPARATOR)
    invoice = fields[0].strip()
    if not invoice.startswith("6"):
        return None
    # The usual case, a good line, in one test; anything else is spelled out by _reasons.
    if len(fields) == 4 and len(invoice) == INVOICE_LENGTH and "\x00" not in text:
        quantity, value = fields[1].strip(), fields[3].strip()
        if (
            quantity.isdigit()
            and quantity.isascii()
            and len(quantity) <= MAX_QUANTITY_DIGITS
            and _VALUE.fullmatch(value)
        ):
            description = fields[2]
            return _new_tuple(
                InvoiceLine,
                (number, invoice, int(quantity), description, Decimal(value), normalise_categories(description)),
            )
    reasons = _reasons(text, fields, invoice)
    if reasons:
        return Problem(line=number, reason="; ".join(reasons))
    return _invoice_line(number, invoice, fields[1].strip(), fields[2], fields[3].strip())


def _invoice_line(number: int, invoice: str, quantity: str, description: str, value: str) -> InvoiceLine:
    return _new_tuple(
        InvoiceLine, (number, invoice, int(quantity), description, Decimal(value), normalise_categories(description))
    )


def _reasons(text: str, fields: List[str], invoice: str) -> List[str]:
    """Everything wrong with a line whose invoice starts with 6."""
    reasons = []
    if "\x00" in text:
        reasons.append("contains a NUL character")
    if len(fields) != 4:
        reasons.append("has {} fields separated by '|', expected 4".format(len(fields)))
        return reasons
    if len(invoice) != INVOICE_LENGTH:
        reasons.append(
            "invoice number {!r} has {} characters, expected {}".format(invoice, len(invoice), INVOICE_LENGTH)
        )
    quantity_text = fields[1].strip()
    if not (quantity_text.isdigit() and quantity_text.isascii()):
        reasons.append("quantity {!r} is not a whole number".format(quantity_text))
    elif len(quantity_text.lstrip("0")) > MAX_QUANTITY_DIGITS:
        reasons.append("quantity {!r} is too large".format(quantity_text))
    value_text = fields[3].strip()
    if not _VALUE.fullmatch(value_text):
        if "," in value_text:
            reasons.append("value {!r} uses a comma; the decimal separator is a dot".format(value_text))
        else:
            reasons.append("value {!r} is not a decimal number".format(value_text))
    return reasons


def normalise_categories(description: str) -> Tuple[str, ...]:
    """Trimmed, inner blanks folded, lower case, empties and repeats dropped, order kept."""
    known = _CATEGORIES.get(description)
    if known is not None:
        return known
    names: List[str] = []
    for item in description.split(","):
        name = _NORMALISED.get(item)
        if name is None:
            name = normalise_category(item)
            if len(_NORMALISED) < NORMALISED_CACHE_SIZE:
                _NORMALISED[item] = name
        if name and name not in names:
            names.append(name)
    categories = tuple(names)
    if len(_CATEGORIES) < NORMALISED_CACHE_SIZE:
        _CATEGORIES[description] = categories
    return categories


def normalise_category(item: str) -> str:
    """One item of a description: trimmed, inner blanks folded, lower case ("" when empty)."""
    return " ".join(item.split()).lower()


class CategoryLinks:
    """Which lines name each category, gathered a block at a time: per category, its line numbers
    ascending, each once (a line that names a category twice links it once). A plain line's
    categories come from its description; another line's are those its InvoiceLine names."""

    def __init__(self) -> None:
        self._numbers: Dict[str, "array[int]"] = {}
        self._unnamed: "array[int]" = array(LINE_NUMBER_TYPE)  # empty items: dropped
        self._by_spelling = _ArraysBySpelling(self._array)
        self._in_line_order = True

    def _array(self, name: str) -> "array[int]":
        if not name:
            return self._unnamed
        numbers = self._numbers.get(name)
        if numbers is None:
            numbers = self._numbers[name] = array(LINE_NUMBER_TYPE)
        return numbers

    def add(self, block: LineBlock) -> None:
        by_spelling = self._by_spelling
        for number, description in zip(block.numbers, block.descriptions()):
            for spelling in description.split(","):
                by_spelling[spelling].append(number)
        for line in block.others:
            for name in line.categories:
                self._array(name).append(line.line_number)
        if block.plain and block.others:
            self._in_line_order = False  # the plain lines' numbers went in first

    def take(self) -> Dict[str, "array[int]"]:
        """What was gathered since the last take, and forget it."""
        taken = {}
        for name, numbers in self._numbers.items():
            if numbers:
                # In line order, a line's repeats are next to each other and dict.fromkeys drops them.
                # (An array is built faster from a list than from a dict's keys: 15-20% of take.)
                unique = list(dict.fromkeys(numbers)) if self._in_line_order else sorted(set(numbers))
                taken[name] = array(LINE_NUMBER_TYPE, unique)
                del numbers[:]
        del self._unnamed[:]
        self._in_line_order = True
        return taken


class _ArraysBySpelling(Dict[str, "array[int]"]):
    """Each spelling of an item (" Frutta  Secca") to the array of its normalised category."""

    def __init__(self, array_of: Callable[[str], "array[int]"]) -> None:
        super().__init__()
        self._array_of = array_of

    def __missing__(self, spelling: str) -> "array[int]":
        numbers = self._array_of(normalise_category(spelling))
        if len(self) < NORMALISED_CACHE_SIZE:
            self[spelling] = numbers
        return numbers
