"""The deployment steps of docs/ops.md create what the systemd units of deploy/ run with: the user, the
data folder, the configuration file only that user reads; and systemd accepts the units."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from warehouse_core.environment import read_dotenv

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = ("warehouse-web.service", "warehouse-runner.service")


def deployment_commands() -> List[List[str]]:
    """The shell lines of the first code block under "Deployment" in docs/ops.md."""
    section = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8").split("## Deployment", 1)[1]
    block = section.split("```", 2)[1]
    info, _, body = block.partition("\n")
    assert info == "sh"
    return [shlex.split(line, comments=True) for line in body.splitlines() if line.strip()]


def unit_service_section(name: str) -> Dict[str, str]:
    values: Dict[str, str] = {}
    section = ""
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


def run_as(words: List[str]) -> Dict[str, str]:
    """The options of an ``install``/``useradd`` line, by flag, and its operands under "paths"."""
    options: Dict[str, str] = {"paths": ""}
    paths = []
    flags_with_value = {"-o", "-g", "-m", "--home-dir", "--shell", "--gid"}
    index = 1
    while index < len(words):
        word = words[index]
        if word in flags_with_value:
            options[word] = words[index + 1]
            index += 2
            continue
        if word.startswith("-"):
            options[word] = ""
        else:
            paths.append(word)
        index += 1
    options["paths"] = " ".join(paths)
    return options


@pytest.fixture(scope="module")
def commands():
    return deployment_commands()


@pytest.mark.parametrize("unit", UNITS)
def test_the_units_user_is_created_as_a_system_user_with_its_group(commands, unit):
    service = unit_service_section(unit)
    useradds = [run_as(words) for words in commands if words[0] == "useradd"]
    assert [u for u in useradds if u["paths"] == service["User"] and "--system" in u and "--user-group" in u], useradds
    assert service["Group"] == service["User"]


@pytest.mark.parametrize("unit", UNITS)
def test_the_working_directory_is_created_for_that_user_and_is_the_data_dir(commands, unit):
    service = unit_service_section(unit)
    folders = [run_as(words) for words in commands if words[:2] == ["install", "-d"]]
    [folder] = [f for f in folders if f["paths"] == service["WorkingDirectory"]]
    assert (folder["-o"], folder["-g"]) == (service["User"], service["Group"])
    example = read_dotenv(DEPLOY / "warehouse.env.example")
    assert example["WAREHOUSE_DATA_DIR"] == service["WorkingDirectory"]


@pytest.mark.parametrize("unit", UNITS)
def test_the_configuration_is_installed_readable_by_that_user_only(commands, unit):
    service = unit_service_section(unit)
    config = re.match(r"WAREHOUSE_CONFIG=(\S+)$", service["Environment"]).group(1)
    [installed] = [
        run_as(words) for words in commands if words[0] == "install" and "-d" not in words and words[-1] == config
    ]
    assert installed["paths"] == "deploy/warehouse.env.example " + config
    assert (installed["-o"], installed["-m"]) == (service["User"], "0600")
    [folder] = [
        run_as(words) for words in commands if words[:2] == ["install", "-d"] and words[-1] == str(Path(config).parent)
    ]
    assert folder["-g"] == service["Group"] and folder["-o"] == "root"


@pytest.mark.parametrize("unit", UNITS)
def test_the_programs_are_those_of_the_venv_the_steps_create(commands, unit):
    service = unit_service_section(unit)
    [venv] = [words[-1] for words in commands if words[1:3] == ["-m", "venv"]]
    assert shlex.split(service["ExecStart"])[0].startswith(venv + "/bin/")
    installed_units = [words for words in commands if words[0] == "install" and words[-1] == "/etc/systemd/system/"]
    assert installed_units and "deploy/" + unit in installed_units[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(tmp_path):
    """``systemd-analyze verify`` in a throwaway root: the system's own units, the two programs
    where the units expect them (this checkout's), and the units as the steps install them."""
    system_units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)
    if system_units is None:
        pytest.skip("no systemd unit directory on this machine")
    shutil.copytree(str(system_units), str(tmp_path / "usr/lib/systemd/system"), symlinks=True)
    installed = tmp_path / "etc/systemd/system"
    installed.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(str(DEPLOY / unit), str(installed / unit))
        program = Path(shlex.split(unit_service_section(unit)["ExecStart"])[0])
        target = tmp_path / program.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("#!/bin/sh\n", encoding="utf-8")
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--root", str(tmp_path)] + [str(installed / unit) for unit in UNITS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"),
    )
    assert (result.returncode, result.stdout) == (0, "")
