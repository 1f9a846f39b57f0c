"""The configuration table (docs/ops.md) cannot drift from the settings model; the README opens with the
two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import settings_values
from warehouse_core.settings import Settings, load_settings, variable_name

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPS = ROOT / "docs" / "ops.md"
ROW = re.compile(r"^\| `(WAREHOUSE_[A-Z_]+)`(?:, `(WAREHOUSE_[A-Z_]+)`)? \| (.+?) \|(.*)\|$")


def table():
    rows = {}
    for line in OPS.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            for name in filter(None, match.group(1, 2)):
                rows[name] = match.group(3).strip()
    return rows


def test_every_setting_is_documented_and_nothing_else():
    documented = set(table())
    assert documented == {variable_name(name) for name in Settings.model_fields}


def test_documented_defaults_match_the_model():
    rows = table()
    for name, field in Settings.model_fields.items():
        shown = rows[variable_name(name)]
        if field.is_required():
            assert shown == "required", name
            continue
        default = field.default
        if default is None or default == {} or default == ():
            assert shown.startswith(("none", "random")), name
            continue
        literal = re.sub(r"^`(.*)`$", r"\1", shown)
        expected = {
            "export_columns": ",".join(Settings.model_fields["export_columns"].default),
            "poll_window": "08:00-20:00",
            "poll_days": "mon-fri",
            "no_file_alert_at": "19:00",
            "data_dir": "./var",
        }.get(name, str(default).rstrip("0").rstrip(".") if isinstance(default, float) else str(default))
        assert literal == expected, name


def test_the_readme_opens_with_the_two_commands():
    opening = README.read_text(encoding="utf-8").split("## ")[0]
    assert "make run" in opening and "make test" in opening


def url_examples(variable: str):
    """The URLs a row of the configuration table shows, placeholders made real (``host``, ``port``);
    one elided with … or a bare scheme (``ftps://``) is not an example."""
    [row] = [
        line for line in OPS.read_text(encoding="utf-8").splitlines() if line.startswith("| `{}`".format(variable))
    ]
    for example in re.findall(r"`([a-z]+://[^`]+)`", row):
        if "…" not in example:
            yield example.replace("@host:port", "@relay.example.org:2121").replace("@host", "@relay.example.org")


@pytest.mark.parametrize("variable", ["WAREHOUSE_INBOUND_FTP_URL", "WAREHOUSE_SMTP_URL", "WAREHOUSE_REMOTE_LOG_FS"])
def test_every_url_the_configuration_table_shows_is_accepted_at_start(variable):
    """A user who copies an example from the table gets a service that starts."""
    examples = list(url_examples(variable))
    assert examples, variable
    for example in examples:
        values = {variable_name(key): str(value) for key, value in settings_values().items()}
        values[variable] = example
        values["WAREHOUSE_REMOTE_LOG_HOST_KEY"] = "SHA256:" + "A" * 43
        load_settings(values)
