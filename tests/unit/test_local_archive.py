"""The local archive keeps a received file durably before the poll deletes it from the server: the
file, its name in its day folder, and a new day folder's own name in the archive (a crash right
after the DELE must not lose a folder the disk never wrote down)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import List

from warehouse_core.adapters.local_archive import LocalArchive

DAY = dt.date(2026, 11, 26)


def keep(archive: LocalArchive, name: str, data: bytes, day: dt.date = DAY) -> str:
    with archive.receive() as pending:
        pending.write(data)
        return pending.keep(day, name)


def test_a_new_day_folder_is_written_down_in_its_parents_before_keep_returns(tmp_path):
    synced: List[Path] = []
    archive = LocalArchive(tmp_path / "data", sync_folder=synced.append)
    assert keep(archive, "a.txt", b"one\n") == "2026-11-26/a.txt"
    root = (tmp_path / "data").resolve() / "archive"
    # the file's name in the day folder, the day folder's in the archive, the archive's in the data folder
    assert {root / "2026-11-26", root, root.parent} <= set(synced)


def test_an_existing_day_folder_needs_only_the_files_name_written_down(tmp_path):
    synced: List[Path] = []
    archive = LocalArchive(tmp_path, sync_folder=synced.append)
    keep(archive, "a.txt", b"one\n")
    synced.clear()
    keep(archive, "b.txt", b"two\n")
    assert synced == [tmp_path.resolve() / "archive" / "2026-11-26"]
    assert (tmp_path / "archive" / "2026-11-26" / "b.txt").read_bytes() == b"two\n"


def test_the_real_folder_sync_runs(tmp_path):
    """Without a recorder the archive syncs through the operating system, and the file is there."""
    archive = LocalArchive(tmp_path)
    keep(archive, "a.txt", b"one\n", dt.date(2026, 11, 27))
    assert (tmp_path / "archive" / "2026-11-27" / "a.txt").read_bytes() == b"one\n"


def test_partial_downloads_are_cleared_and_uploads_are_not_while_one_is_received(tmp_path):
    """What a killed poll leaves in incoming/ (tmp*.part from earlier versions, download-*.part)
    is removed; an upload's partial file stays while an upload is being received, since it may be
    that one's."""
    archive = LocalArchive(tmp_path)
    with archive.receive(download=True) as pending:
        pending.write(b"half a file")
        [downloading] = [p for p in archive.incoming.iterdir() if p.suffix == ".part"]
        assert downloading.name.startswith("download-")
    for name in ("tmpk3x9q0.part", "download-a1b2.part", "upload-c3d4.part", "notes.txt"):
        (archive.incoming / name).write_bytes(b"x")
    with archive.receive() as uploading:
        uploading.write(b"being written")
        assert sorted(archive.clear_partial_files()) == ["download-a1b2.part", "tmpk3x9q0.part"]
        left = sorted(p.name for p in archive.incoming.iterdir() if p.suffix == ".part")
        assert len(left) == 2 and "upload-c3d4.part" in left  # the other one is being written
    assert sorted(p.name for p in archive.incoming.iterdir()) == [".receiving", "notes.txt", "upload-c3d4.part"]


def test_clearing_with_no_incoming_folder_is_nothing_to_do(tmp_path):
    assert LocalArchive(tmp_path).clear_partial_files() == []


def test_an_upload_a_killed_request_left_is_cleared_once_no_upload_is_running(tmp_path):
    """A request killed mid-upload leaves upload-*.part; it goes at the next clearing, unless an
    upload is being received right then (in any process: they hold incoming/'s lock shared)."""
    archive = LocalArchive(tmp_path)
    archive.incoming.mkdir(parents=True)
    (archive.incoming / "upload-killed.part").write_bytes(b"half")
    with archive.receive() as pending:
        pending.write(b"being written")
        assert archive.clear_partial_files() == []
        assert (archive.incoming / "upload-killed.part").exists()
        assert LocalArchive(tmp_path).clear_partial_files() == [], "another process's view: the same"
    assert archive.clear_partial_files() == ["upload-killed.part"]
    assert sorted(p.name for p in archive.incoming.iterdir()) == [".receiving"]
