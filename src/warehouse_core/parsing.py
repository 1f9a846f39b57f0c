"""Bytes of a ``Letture`` file in, invoice lines and problems out.

Everything here streams: memory stays flat however long the file is. A file is read twice,
once by ``inspect`` (size, sha256, line count, encoding) and once by ``parse_lines``.
"""
from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO, Dict, Iterator, List, Tuple, Union

from warehouse_core.model import InvoiceLine, Problem

CHUNK_SIZE = 1 << 20
MAX_REPORTED_PROBLEMS = 100
FIELD_SEPARATOR = "|"
INVOICE_LENGTH = 9
MAX_QUANTITY_DIGITS = 18  # what a bigint column holds
UTF8 = "utf-8-sig"
CP1252 = "cp1252"
# A day's file spells its few dozen categories a few hundred ways: each spelling is normalised once.
NORMALISED_CACHE_SIZE = 10_000
_NORMALISED: Dict[str, str] = {}

_QUANTITY = re.compile(r"[0-9]+", re.ASCII)
_VALUE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class FileFacts:
    """What one pass over the raw bytes tells about a file."""

    size: int
    sha256: str
    line_count: int
    encoding: str


def inspect(stream: BinaryIO) -> FileFacts:
    """Size, sha256, line count (a final newline adds no line) and encoding of a file."""
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    utf8_valid = True
    size = 0
    newlines = 0
    last_byte = b""
    while True:
        chunk = stream.read(CHUNK_SIZE)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        newlines += chunk.count(b"\n")
        last_byte = chunk[-1:]
        if utf8_valid:
            try:
                utf8.decode(chunk)
            except UnicodeDecodeError:
                utf8_valid = False
    if utf8_valid:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_valid = False
    line_count = newlines + (1 if size and last_byte != b"\n" else 0)
    return FileFacts(
        size=size,
        sha256=digest.hexdigest(),
        line_count=line_count,
        encoding=UTF8 if utf8_valid else CP1252,
    )


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


def parse_lines(stream: BinaryIO, encoding: str, tally: ParseTally) -> Iterator[InvoiceLine]:
    """Yield the file's valid invoice lines; count ignored lines and record problems in ``tally``."""
    bom = codecs.BOM_UTF8 if encoding == UTF8 else b""
    errors = "strict" if encoding == UTF8 else "replace"
    for number, raw in enumerate(stream, start=1):
        if number == 1 and bom and raw.startswith(bom):
            raw = raw[len(bom):]
        text = raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8" if bom else encoding, errors)
        tally.total_lines += 1
        outcome = parse_line(number, text)
        if outcome is None:
            tally.ignored_lines += 1
        elif isinstance(outcome, Problem):
            tally.add_problem(outcome)
        else:
            tally.valid_lines += 1
            yield outcome


def parse_line(number: int, text: str) -> Union[InvoiceLine, Problem, None]:
    """One line: an InvoiceLine, a Problem, or None for a line that is not ours."""
    fields = text.split(FIELD_SEPARATOR)
    invoice = fields[0].strip()
    if not invoice.startswith("6"):
        return None
    reasons = []
    if "\x00" in text:
        reasons.append("contains a NUL character")
    if len(fields) != 4:
        reasons.append("has {} fields separated by '|', expected 4".format(len(fields)))
        return Problem(line=number, reason="; ".join(reasons))
    if len(invoice) != INVOICE_LENGTH:
        reasons.append(
            "invoice number {!r} has {} characters, expected {}".format(
                invoice, len(invoice), INVOICE_LENGTH
            )
        )
    quantity_text = fields[1].strip()
    if not _QUANTITY.fullmatch(quantity_text):
        reasons.append("quantity {!r} is not a whole number".format(quantity_text))
    elif len(quantity_text.lstrip("0")) > MAX_QUANTITY_DIGITS:
        reasons.append("quantity {!r} is too large".format(quantity_text))
    value_text = fields[3].strip()
    if not _VALUE.fullmatch(value_text):
        if "," in value_text:
            reasons.append("value {!r} uses a comma; the decimal separator is a dot".format(value_text))
        else:
            reasons.append("value {!r} is not a decimal number".format(value_text))
    if reasons:
        return Problem(line=number, reason="; ".join(reasons))
    description = fields[2]
    return InvoiceLine(
        line_number=number,
        invoice_number=invoice,
        quantity=int(quantity_text),
        description=description,
        value=Decimal(value_text),
        categories=normalise_categories(description),
    )


def normalise_categories(description: str) -> Tuple[str, ...]:
    """Trimmed, inner blanks folded, lower case, empties and repeats dropped, order kept."""
    seen = {}
    for item in description.split(","):
        name = _NORMALISED.get(item)
        if name is None:
            name = " ".join(item.split()).lower()
            if len(_NORMALISED) < NORMALISED_CACHE_SIZE:
                _NORMALISED[item] = name
        if name and name not in seen:
            seen[name] = None
    return tuple(seen)
