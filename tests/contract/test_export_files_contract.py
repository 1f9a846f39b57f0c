"""The ExportFiles port: the fake and the local disk."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes import FakeExportFiles
from warehouse_core.adapters.local_archive import LocalExportFiles

DAY = dt.date(2026, 11, 26)
NAME = "Spedizioni20261126_3.txt"


@pytest.fixture(params=["fake", "local"])
def exports(request, tmp_path):
    return FakeExportFiles() if request.param == "fake" else LocalExportFiles(tmp_path)


def read(exports):
    with exports.open(DAY, NAME) as stream:
        return stream.read()


def test_lines_written_are_counted_and_read_back(exports):
    assert exports.complete_lines(DAY, NAME) == 0
    with exports.writer(DAY, NAME, keep_lines=0) as writer:
        writer.write(b"a|1\n")
        writer.write(b"b|2\n")
        writer.sync()
    assert exports.complete_lines(DAY, NAME) == 2
    assert read(exports) == b"a|1\nb|2\n"


def test_resuming_keeps_the_first_lines_and_drops_a_torn_one(exports):
    with exports.writer(DAY, NAME, keep_lines=0) as writer:
        for line in (b"a", b"b", b"c"):
            writer.write(line + b"\n")
        writer.sync()
    with exports.writer(DAY, NAME, keep_lines=2) as writer:
        writer.write(b"c2\n")
    assert read(exports) == b"a\nb\nc2\n"


def test_a_file_kept_aside_is_read_under_its_new_name_and_the_old_name_is_free(exports):
    with exports.writer(DAY, NAME, keep_lines=0) as writer:
        writer.write(b"a|1\n")
    assert exports.keep_aside(DAY, NAME, NAME + ".run1")
    assert exports.complete_lines(DAY, NAME) == 0  # a new run's export starts afresh
    with exports.open(DAY, NAME + ".run1") as stream:
        assert stream.read() == b"a|1\n"
    assert not exports.keep_aside(DAY, NAME, NAME + ".run2")


def test_the_runs_kept_aside_are_removed_together_and_nothing_else(exports):
    for name in (NAME, NAME + ".run1", NAME + ".run2", NAME + ".run2.part", "Spedizioni20261126_4.txt.run1"):
        with exports.writer(DAY, name, keep_lines=0) as writer:
            writer.write(b"a|1\n")
    assert exports.discard_kept(DAY, NAME) == 2
    assert exports.complete_lines(DAY, NAME) == 1
    assert exports.complete_lines(DAY, NAME + ".run1") == 0 and exports.complete_lines(DAY, NAME + ".run2") == 0
    assert exports.complete_lines(DAY, NAME + ".run2.part") == 1
    assert exports.complete_lines(DAY, "Spedizioni20261126_4.txt.run1") == 1
    assert exports.discard_kept(DAY + dt.timedelta(days=1), NAME) == 0


def test_local_export_names_cannot_leave_the_folder(tmp_path):
    exports = LocalExportFiles(tmp_path)
    assert exports.path(DAY, "../../etc/passwd").parent == tmp_path.resolve() / "exports" / "2026-11-26"
