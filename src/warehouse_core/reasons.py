"""The reasons the service records in English, in the operator's language when shown.

A rejected line's problem, a file's, and why a session failed are written by the core as English
text: stored so, in the problems CSV, the API's ``reason`` and ``detail`` fields and the logs alike
(one spelling to search for). The page, the history and the mails show them in WAREHOUSE_LANGUAGE:
each sentence below is a msgid of the catalogues (``%(name)s`` for what varies), and
:func:`translate` recognises a recorded reason by its sentence and says it again from the catalogue.
A reason no sentence matches (a server's own words, a newer message) is shown as recorded."""

from __future__ import annotations

import re
from typing import Callable, List, Pattern, Tuple

# Keep each sentence exactly as the code that writes it words it (parsing.py, usecases/importing.py,
# usecases/run_session.py); tests/unit/test_i18n.py checks them against what the code writes.
REASONS = (
    "contains a NUL character",
    "has %(fields)s fields separated by '|', expected 4",
    "invoice number %(invoice)s has %(length)s characters, expected %(expected)s",
    "quantity %(quantity)s is not a whole number",
    "quantity %(quantity)s is too large",
    "value %(value)s uses a comma; the decimal separator is a dot",
    "value %(value)s is not a decimal number",
    "the name declares %(records)s records (%(lines)s lines) but the file has %(actual)s lines",
    "the upload to the outbound FTP server failed after %(tries)s tries: %(error)s",
    # usecases/run_session.py NO_CONFIRMATION_UNREADABLE, NO_CONFIRMATION (the longer first).
    "no confirmation of %(file)s in the remote log within %(seconds)s s (the log could not be read: %(error)s)",
    "no confirmation of %(file)s in the remote log within %(seconds)s s",
    "the remote log reports %(records)s records read from %(file)s, but %(written)s were written",
    "the remote log reports an error for %(file)s: %(line)s",
    "the export has %(written)s lines but %(total)s valid lines were counted at the start",
    "no records to generate: the day has no valid invoice line",
    # The delivery ledger's (usecases/upload.py EARLIER_DAY_SILENT, HELD_ELSEWHERE; run_session.py WORKER_STOPPED*).
    "the outbound FTP server did not say within %(tries)s tries whether the export of %(day)s reached the consumer:"
    " nothing was exported",
    "%(count)s invoice(s) of the export, %(invoices)s, are held by another day's export that was renamed into place"
    " first: not renamed; ops can retry the day to export it without them",
    "the session's worker stopped %(tries)s times without finishing (killed or crashed)",
    "the session's worker stopped %(tries)s times without finishing; last error: %(error)s",
    # An upload's error of our own (usecases/upload.py REDELIVERY_LOG_UNREADABLE), said inside the one above.
    "remote log not readable before the rename of a redelivery (%(error)s): not renamed",
    # A closed session's detail (usecases/delivery.py SETTLING_AT_CLOSE and what the settle makes of it).
    "closed by an operator while %(file)s was being renamed into place on the outbound server;"
    " whether the consumer got it is being checked",
    "closed by an operator after %(file)s was delivered to the outbound server; its invoices are recorded as exported",
    "closed by an operator before %(file)s was renamed into place: the consumer never saw it",
    "closed by an operator before the redelivery of %(file)s was renamed into place: the consumer has only the file"
    " delivered earlier, whose invoices stay recorded as exported",
    # A failed day closed with its delivery unknown: after its reason (usecases/delivery.py CLOSED_AFTER_FAILING...).
    "closed by an operator after it failed; whether the consumer got %(file)s is being checked",
    "closed by an operator after it failed; %(file)s had been delivered to the outbound server: its invoices are"
    " recorded as exported",
    "closed by an operator after it failed; %(file)s was never renamed into place: the consumer never saw it",
    "closed by an operator after it failed; the redelivery of %(file)s was never renamed into place: the consumer"
    " has only the file delivered earlier, whose invoices stay recorded as exported",
    # A running session's detail (usecases/upload.py WAITING_FOR, usecases/run_session.py), shown on the page.
    "waiting for the outbound server to say whether the export of %(day)s reached the consumer",
    "waiting for the session of %(day)s to put its file in place first",
    "try %(try)s of %(tries)s failed, retried in %(seconds)s s: %(error)s",
)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _pattern(sentence: str) -> Pattern[str]:
    parts: List[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(sentence):
        parts.append(re.escape(sentence[last : match.start()]))
        parts.append("(?P<{}>.+?)".format(match.group(1)))
        last = match.end()
    parts.append(re.escape(sentence[last:]))
    # A sentence ends where the text ends or where the next reason starts ("; " joins a line's reasons).
    return re.compile("".join(parts) + r"(?:; (?=.)|$)", re.S)


_PATTERNS: Tuple[Tuple[str, Pattern[str]], ...] = tuple((sentence, _pattern(sentence)) for sentence in REASONS)


def translate(text: str, gettext: Callable[[str], str]) -> str:
    """``text`` (one reason, or several joined by "; ") in the catalogue's language."""
    said: List[str] = []
    rest = text
    while rest:
        for sentence, pattern in _PATTERNS:
            match = pattern.match(rest)
            if match is not None:
                values = match.groupdict()
                if "error" in values:  # an error may be one of the service's own reasons, said again
                    values["error"] = translate(values["error"], gettext)
                said.append(gettext(sentence) % values)
                rest = rest[match.end() :]
                break
        else:
            said.append(rest)
            break
    return "; ".join(said)
