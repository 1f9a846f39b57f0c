"""Where the settings come from: ``WAREHOUSE_*`` variables, over an optional dotenv file named by
``WAREHOUSE_CONFIG``; and how a refusal names the bad keys without their values."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Mapping

from pydantic import ValidationError

from warehouse_core.errors import ConfigurationError

# The settings' own logger: a warning about a variable is one about the settings.
log = logging.getLogger("warehouse_core.settings")

PREFIX = "WAREHOUSE_"
CONFIG_FILE_VARIABLE = "WAREHOUSE_CONFIG"
# The WAREHOUSE_* names read outside the settings model: anything else that is not a field of it
# is reported at start as a likely typo.
OTHER_VARIABLES = (
    CONFIG_FILE_VARIABLE,
    "WAREHOUSE_TEST_DATABASE_URL",  # the test suite's and the benchmark's PostgreSQL server
)


def variable_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def read_dotenv(path: Path) -> Dict[str, str]:
    """KEY=value lines; blank lines and # comments skipped; values may be quoted."""
    values = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def warehouse_variables(environ: Mapping[str, str]) -> Dict[str, str]:
    """Every WAREHOUSE_* value: the WAREHOUSE_CONFIG file's, then the environment's over them."""
    values: Dict[str, str] = {}
    config_file = environ.get(CONFIG_FILE_VARIABLE)
    if config_file:
        try:
            values.update(read_dotenv(Path(config_file)))
        except OSError as error:
            raise ConfigurationError(
                "invalid configuration: {} names a file that cannot be read ({})".format(
                    CONFIG_FILE_VARIABLE, error.strerror
                )
            ) from None
    values.update({key: value for key, value in environ.items() if key.startswith(PREFIX)})
    return values


def warn_about_unknown_variables(names: Iterable[str], known: FrozenSet[str]) -> None:
    """A misspelled key silently falls back to its default: name it, and the closest known name."""
    for name in sorted(set(names) - known):
        closest = difflib.get_close_matches(name, sorted(known), n=1)
        log.warning(
            "%s is not a setting of the warehouse service and is ignored%s",
            name,
            "; did you mean {}?".format(closest[0]) if closest else "",
        )


def describe_errors(error: ValidationError) -> str:
    """One line naming every bad key and why, never the value it had."""
    reasons: List[str] = []
    for item in error.errors(include_input=False, include_url=False):
        key = variable_name(str(item["loc"][0])) if item["loc"] else "?"
        message = "is required" if item["type"] == "missing" else _plain(item["msg"])
        reasons.append("{} {}".format(key, message))
    return "invalid configuration: " + "; ".join(reasons)


def _plain(message: str) -> str:
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            return ("must be " if prefix == "Input should be " else "") + message[len(prefix) :]
    return message
