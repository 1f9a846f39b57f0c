"""/metrics: the service's state as Prometheus metrics, from values read from the database.

The text exposition format (version 0.0.4) is written here rather than with prometheus_client:
each scrape reads one snapshot from the database and formats a dozen samples, which is what a
custom collector plus ``generate_latest`` would do too, minus a process-wide registry and a
dependency. The test suite parses the output with prometheus_client's own parser, so the two
cannot disagree about the format.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import List, Mapping, Optional, Tuple

from warehouse_core.delivery_states import ATTENTION_DAYS, NEEDING_ATTENTION_STATES
from warehouse_core.model import InvoiceStatus, SessionState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEPENDENCIES = ("database", "inbound_ftp", "outbound_ftp", "smtp", "remote_log")

Labels = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the database says, read in one transaction so that every process reports the same."""

    last_import_at: Optional[dt.datetime] = None
    poll_last_success_at: Optional[dt.datetime] = None
    poll_failures: int = 0
    lines_imported: Mapping[str, int] = field(default_factory=dict)
    today_state: SessionState = SessionState.NONE
    # The earlier days that still need someone (the status object's ``earlier``), by state.
    days_needing_attention: Mapping[str, int] = field(default_factory=dict)
    delivery_unknown_days: int = 0
    last_session_duration: Optional[float] = None
    outbox_pending: int = 0
    outbox_oldest_pending_at: Optional[dt.datetime] = None
    # The last result of each dependency check the scheduler ran; None when never checked.
    dependencies: Mapping[str, Optional[bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricFamily:
    name: str
    kind: str
    help: str
    samples: List[Tuple[Labels, float]]


def _timestamp(moment: Optional[dt.datetime]) -> float:
    # 0 for "never": an alert on the age (time() - value) fires at once, as it should.
    return moment.timestamp() if moment is not None else 0.0


def families(snapshot: MetricsSnapshot, now: dt.datetime) -> List[MetricFamily]:
    oldest = snapshot.outbox_oldest_pending_at
    return [
        MetricFamily(
            "warehouse_last_import_timestamp_seconds",
            "gauge",
            "When the last file was imported (Unix time; 0 if never).",
            [((), _timestamp(snapshot.last_import_at))],
        ),
        MetricFamily(
            "warehouse_poll_last_success_timestamp_seconds",
            "gauge",
            "When a poll last read the inbound server (Unix time; 0 if never).",
            [((), _timestamp(snapshot.poll_last_success_at))],
        ),
        MetricFamily(
            "warehouse_poll_failures_total",
            "counter",
            "Polls that could not read the inbound server or ended in an unexpected error.",
            [((), float(snapshot.poll_failures))],
        ),
        MetricFamily(
            "warehouse_lines_imported_total",
            "counter",
            "Invoice lines stored by imports, by invoice status at import time.",
            [
                ((("status", status.value),), float(snapshot.lines_imported.get(status.value, 0)))
                for status in InvoiceStatus
            ],
        ),
        MetricFamily(
            "warehouse_session_state",
            "gauge",
            "Today's session state: 1 for the current state, 0 for the others.",
            [((("state", state.value),), 1.0 if state is snapshot.today_state else 0.0) for state in SessionState],
        ),
        MetricFamily(
            "warehouse_days_needing_attention",
            "gauge",
            "Earlier days (the last {}) that still need someone, by state: an alert on it outlives midnight.".format(
                ATTENTION_DAYS
            ),
            [
                ((("state", state),), float(snapshot.days_needing_attention.get(state, 0)))
                for state in NEEDING_ATTENTION_STATES
            ],
        ),
        MetricFamily(
            "warehouse_delivery_unknown_days",
            "gauge",
            "Days, of any date, whose export may or may not have reached the consumer (being settled).",
            [((), float(snapshot.delivery_unknown_days))],
        ),
        MetricFamily(
            "warehouse_session_last_duration_seconds",
            "gauge",
            "From start to end of the last finished session (NaN if none).",
            [((), snapshot.last_session_duration if snapshot.last_session_duration is not None else math.nan)],
        ),
        MetricFamily(
            "warehouse_outbox_pending",
            "gauge",
            "Mails waiting in the outbox.",
            [((), float(snapshot.outbox_pending))],
        ),
        MetricFamily(
            "warehouse_outbox_oldest_pending_age_seconds",
            "gauge",
            "Age of the oldest mail waiting in the outbox (0 when none waits).",
            [((), max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)],
        ),
        MetricFamily(
            "warehouse_dependency_up",
            "gauge",
            "1 when the last scheduled check of the dependency succeeded, 0 when it failed (absent: never checked).",
            [
                ((("dependency", name),), 1.0 if snapshot.dependencies[name] else 0.0)
                for name in DEPENDENCIES
                if snapshot.dependencies.get(name) is not None
            ],
        ),
    ]


def database_down_families() -> List[MetricFamily]:
    """What /metrics can still say when the database does not answer."""
    return [
        MetricFamily(
            "warehouse_dependency_up",
            "gauge",
            "1 when the last scheduled check of the dependency succeeded.",
            [((("dependency", "database"),), 0.0)],
        )
    ]


def exposition(metric_families: List[MetricFamily]) -> str:
    """The Prometheus text format, version 0.0.4."""
    lines: List[str] = []
    for family in metric_families:
        lines.append("# HELP {} {}".format(family.name, _escape_help(family.help)))
        lines.append("# TYPE {} {}".format(family.name, family.kind))
        for labels, value in family.samples:
            lines.append("{}{} {}".format(family.name, _labels(labels), _value(value)))
    return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = (
        '{}="{}"'.format(name, value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n"))
        for name, value in labels
    )
    return "{" + ",".join(escaped) + "}"


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)
