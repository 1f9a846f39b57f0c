"""/metrics exposition (SPEC §7): parsed back with prometheus_client's own parser."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from tests.conftest import at
from warehouse_core.metrics import MetricsSnapshot, database_down_families, exposition, families
from warehouse_core.model import SessionState

# A test extra: a work tree whose venv predates it skips these until `make venv` runs again.
text_string_to_metric_families = pytest.importorskip("prometheus_client.parser").text_string_to_metric_families


def parsed(text):
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_every_metric_of_the_spec_parses_with_its_values():
    now = at("2026-11-26T19:00")
    snapshot = MetricsSnapshot(
        last_import_at=at("2026-11-26T10:00"),
        poll_last_success_at=at("2026-11-26T18:30"),
        poll_failures=3,
        lines_imported={"valid": 6, "not_found": 2},
        today_state=SessionState.COMPLETED,
        last_session_duration=42.5,
        outbox_pending=2,
        outbox_oldest_pending_at=now - dt.timedelta(minutes=5),
        dependencies={"database": True, "inbound_ftp": False, "smtp": None},
    )
    samples = parsed(exposition(families(snapshot, now)))
    assert samples[("warehouse_last_import_timestamp_seconds", ())] == at("2026-11-26T10:00").timestamp()
    assert samples[("warehouse_poll_last_success_timestamp_seconds", ())] == at("2026-11-26T18:30").timestamp()
    assert samples[("warehouse_poll_failures_total", ())] == 3
    assert samples[("warehouse_lines_imported_total", (("status", "valid"),))] == 6
    assert samples[("warehouse_lines_imported_total", (("status", "not_found"),))] == 2
    assert samples[("warehouse_lines_imported_total", (("status", "already_exported"),))] == 0
    states = {labels[0][1]: value for (name, labels), value in samples.items() if name == "warehouse_session_state"}
    assert states == {"none": 0, "ready": 0, "running": 0, "completed": 1, "failed": 0, "closed": 0}
    assert samples[("warehouse_session_last_duration_seconds", ())] == 42.5
    assert samples[("warehouse_outbox_pending", ())] == 2
    assert samples[("warehouse_outbox_oldest_pending_age_seconds", ())] == 300
    up = {labels[0][1]: value for (name, labels), value in samples.items() if name == "warehouse_dependency_up"}
    assert up == {"database": 1, "inbound_ftp": 0}


def test_an_empty_database_says_never_rather_than_failing():
    text = exposition(families(MetricsSnapshot(), at("2026-11-26T08:00")))
    samples = parsed(text)
    assert samples[("warehouse_last_import_timestamp_seconds", ())] == 0
    assert math.isnan(samples[("warehouse_session_last_duration_seconds", ())])
    assert samples[("warehouse_session_state", (("state", "none"),))] == 1
    assert samples[("warehouse_outbox_oldest_pending_age_seconds", ())] == 0
    assert "# TYPE warehouse_poll_failures_total counter" in text.splitlines()


def test_with_the_database_down_it_says_so():
    samples = parsed(exposition(database_down_families()))
    assert samples == {("warehouse_dependency_up", (("dependency", "database"),)): 0}


def test_earlier_days_needing_someone_are_counted_by_state_so_a_failed_days_alert_outlives_midnight():
    """SPEC §7: warehouse_session_state is today's; the earlier days that still need someone are
    counted apart, every state always present (an alert on > 0 never sees a series vanish)."""
    snapshot = MetricsSnapshot(
        today_state=SessionState.NONE,
        days_needing_attention={"failed": 2, "closed": 1},
        delivery_unknown_days=1,
    )
    samples = parsed(exposition(families(snapshot, at("2026-11-27T08:00"))))
    attention = {
        labels[0][1]: value for (name, labels), value in samples.items() if name == "warehouse_days_needing_attention"
    }
    assert attention == {"ready": 0, "running": 0, "failed": 2, "closed": 1}
    assert samples[("warehouse_delivery_unknown_days", ())] == 1
    assert samples[("warehouse_session_state", (("state", "none"),))] == 1


def test_no_earlier_day_needing_someone_reads_zero():
    samples = parsed(exposition(families(MetricsSnapshot(), at("2026-11-27T08:00"))))
    assert samples[("warehouse_days_needing_attention", (("state", "failed"),))] == 0
    assert samples[("warehouse_delivery_unknown_days", ())] == 0
