"""The commands docs/ops.md gives ops to run by hand, run against the test servers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import settings_values
from warehouse_core.errors import ConfigurationError
from warehouse_core.settings import load_settings, variable_name

OPS = Path(__file__).resolve().parents[2] / "docs" / "ops.md"


@pytest.mark.skipif(shutil.which("ssh-keyscan") is None, reason="needs OpenSSH's ssh-keyscan")
def test_the_documented_fingerprint_command_prints_what_the_host_key_setting_takes(ssh_server):
    """`ssh-keyscan -p PORT HOST | ssh-keygen -lf -` as the configuration table prints it, and as
    the refusal of a missing WAREHOUSE_REMOTE_LOG_HOST_KEY words it: its fingerprints are the
    server's, in the form the setting accepts."""
    [command] = re.findall(r"`(ssh-keyscan -p PORT HOST \\\| ssh-keygen -lf -)`", OPS.read_text(encoding="utf-8"))
    command = command.replace("\\|", "|").replace("PORT", str(ssh_server.port)).replace("HOST", "127.0.0.1")
    printed = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=True)
    fingerprints = re.findall(r"SHA256:[A-Za-z0-9+/]{43}", printed.stdout)
    assert ssh_server.host_key_fingerprint() in fingerprints
    values = {variable_name(key): str(value) for key, value in settings_values().items()}
    values["WAREHOUSE_REMOTE_LOG_FS"] = ssh_server.url()
    settings = load_settings(dict(values, WAREHOUSE_REMOTE_LOG_HOST_KEY=",".join(fingerprints)))
    assert ssh_server.host_key_fingerprint() in settings.remote_log_host_key
    with pytest.raises(ConfigurationError) as refused:
        load_settings(values)
    hint = "ssh-keyscan -p {} 127.0.0.1 | ssh-keygen -lf -".format(ssh_server.port)
    assert hint in str(refused.value)
