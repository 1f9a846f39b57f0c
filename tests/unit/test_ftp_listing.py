"""Reading a LIST answer: the Unix ``ls -l`` form is parsed, any other form is left to NLST."""

from __future__ import annotations

from warehouse_core.adapters.ftplib_files import _unix_listing
from warehouse_core.model import RemoteFile


def test_vsftpd_listing_gives_plain_files_with_sizes_and_names_with_spaces():
    lines = [
        "-rw-r--r--    1 1001     1001       120000 Nov 27 13:08 Letture20261126083015123_9.txt",
        "drwxr-xr-x    2 1001     1001         4096 Nov 27 13:08 Letture20261125083015123_9.txt",
        "lrwxrwxrwx    1 0        0              11 Nov 27 13:08 link.txt -> other.txt",
        "-rw-r--r--    1 0        0               5 Jan 02  2025 an old file.txt",
    ]
    assert _unix_listing(lines) == [
        RemoteFile("Letture20261126083015123_9.txt", 120000),
        RemoteFile("an old file.txt", 5),
    ]


def test_a_listing_in_another_form_is_not_guessed_at():
    iis = ["11-27-26  01:08PM                 1234 Letture20261126083015123_9.txt"]
    assert _unix_listing(iis) is None
    assert _unix_listing(["total 8"]) == []


def test_a_listing_with_iso_dates_is_not_taken_for_the_ls_form():
    # ls --time-style=long-iso (some NAS and embedded servers): one date field fewer, so the
    # ninth field is the second word of the name; "old Letture….txt" must not become "Letture….txt".
    lines = [
        "-rw-r--r--    1 ftp      ftp          1234 2026-11-27 13:08 old Letture20261126083015123_9.txt",
        "-rw-r--r--    1 ftp      ftp          1234 2026-11-27 13:08 copy of it.txt",
    ]
    assert _unix_listing(lines) is None


def test_a_listing_with_the_day_before_the_month_is_not_guessed_at():
    lines = ["-rw-r--r--    1 ftp      1234 27 Nov 13:08 copy of Letture20261126083015123_9.txt"]
    assert _unix_listing(lines) is None


def test_the_name_is_everything_after_the_single_space_that_follows_the_time():
    lines = ["-rw-r--r--    1 1001     1001          5 Nov 27 13:08  Letture20261126083015123_9.txt"]
    assert _unix_listing(lines) == [RemoteFile(" Letture20261126083015123_9.txt", 5)]
