"""Bytes of a ``Letture`` file in, invoice lines and problems out.

Everything here streams: memory stays flat however long the file is (``invoice_numbers`` holds
one string per distinct invoice). A file is read three times: by ``inspect`` (size, sha256, line
count, encoding), by ``invoice_numbers`` (for one set-based lookup) and by ``parse_lines``.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO, Dict, Iterator, List, Set, Tuple, Union

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
    """Counts kept while ``parse_lines`` streams; read it once the lines are consumed."""

    total_lines: int = 0
    valid_lines: int = 0
    ignored_lines: int = 0
    problem_count: int = 0
    problems: List[Problem] = field(default_factory=list)

    def add_problem(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)


def invoice_numbers(stream: BinaryIO, encoding: str, block_size: int = BLOCK_SIZE) -> Iterator[str]:
    """Each invoice number the file's lines carry, once, as ``parse_lines`` reads them (the first
    field, trimmed, starting with 6): a quick pass that lets the store look them all up in one query."""
    found: Set[str] = set()
    codec, errors = _decoding(encoding)
    for block in _line_blocks(stream, encoding, block_size):
        for raw in block.split(b"\n"):
            invoice = raw.partition(b"|")[0].decode(codec, errors).strip()
            if (
                invoice.startswith("6") and "\x00" not in invoice and invoice not in found
            ):  # a line with a NUL is never stored
                found.add(invoice)
                yield invoice


def parse_lines(
    stream: BinaryIO, encoding: str, tally: ParseTally, block_size: int = BLOCK_SIZE
) -> Iterator[InvoiceLine]:
    """Yield the file's valid invoice lines; count ignored lines and record problems in ``tally``."""
    codec, errors = _decoding(encoding)
    total = valid = ignored = 0
    try:
        for block in _line_blocks(stream, encoding, block_size):
            text = block.decode(codec, errors)  # a block ends at a line's end: it decodes as its lines would
            lines = text.split("\n")
            if text.endswith("\n"):
                lines.pop()  # what follows the last line break is the next block's
            for line in lines:
                total += 1
                outcome = parse_line(total, line.rstrip("\r"))
                if isinstance(outcome, InvoiceLine):
                    valid += 1
                    yield outcome
                elif outcome is None:
                    ignored += 1
                else:
                    tally.add_problem(outcome)
    finally:  # counted in locals (a hot loop), handed over even if the consumer stops early
        tally.total_lines += total
        tally.valid_lines += valid
        tally.ignored_lines += ignored


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
            name = " ".join(item.split()).lower()
            if len(_NORMALISED) < NORMALISED_CACHE_SIZE:
                _NORMALISED[item] = name
        if name and name not in names:
            names.append(name)
    categories = tuple(names)
    if len(_CATEGORIES) < NORMALISED_CACHE_SIZE:
        _CATEGORIES[description] = categories
    return categories
