"""SPEC §8 through the real programs: a customer's broken mail template stops `warehouse-runner
check`, the daemon and `warehouse-web` at start, with one last line naming its file and line,
before any server is tried (none is listening here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import settings_values


@pytest.fixture
def broken_environment(service_environment, tmp_path):
    folder = tmp_path / "customer-templates" / "mail"
    folder.mkdir(parents=True)
    (folder / "no-file.txt").write_text(
        "Nessun file per {{ day.isoformat() }}.\n\nVedi {{ day.nome_del_giorno }}\n", encoding="utf-8"
    )
    values = {"WAREHOUSE_" + key.upper(): value for key, value in settings_values().items()}
    values["WAREHOUSE_TEMPLATES_DIR"] = str(tmp_path / "customer-templates")
    values["WAREHOUSE_DATA_DIR"] = str(tmp_path / "var")
    return service_environment(**values), folder / "no-file.txt"


@pytest.mark.parametrize(
    "program, arguments",
    [("warehouse_runner", ["check"]), ("warehouse_runner", []), ("warehouse_web", ["--port", "0"])],
    ids=["warehouse-runner check", "warehouse-runner", "warehouse-web"],
)
def test_a_broken_customer_template_stops_the_start_with_one_line_naming_its_file_and_line(
    broken_environment, program, arguments
):
    env, template = broken_environment
    finished = subprocess.run(
        [sys.executable, "-m", program, *arguments], env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 1, finished.stderr
    last = finished.stderr.strip().splitlines()[-1]
    assert "{}, line 3".format(template) in last and "has no attribute 'nome_del_giorno'" in last, finished.stderr
    assert finished.stdout == ""
