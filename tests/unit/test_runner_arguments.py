"""warehouse-runner refuses a bad argument before it starts anything: exit 2 (a usage error, as
argparse answers) with the reason on the last line of stderr."""

from __future__ import annotations

import pytest

from warehouse_runner import cli


@pytest.mark.parametrize("limit", ["0", "-5", "abc", "367"])
def test_days_with_a_limit_out_of_range_is_a_usage_error(limit, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["days", "--limit", limit])
    assert caught.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--limit" in last and "a whole number from 1 to 366" in last and repr(limit) in last


def test_days_with_a_limit_in_range_parses():
    assert cli.parser().parse_args(["days", "--limit", "7"]).limit == 7
