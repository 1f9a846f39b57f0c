"""The ``WAREHOUSE_*`` variables as one validated pydantic model.

Secrets (URLs with passwords, the secret key, operator hashes) are ``SecretStr``: they never
show in a repr, a log line or an error message.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import logging
import os
import re
import ssl
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from warehouse_core.clock import zone
from warehouse_core.errors import ConfigurationError
from warehouse_core.holidays import Holidays

log = logging.getLogger(__name__)

PREFIX = "WAREHOUSE_"
CONFIG_FILE_VARIABLE = "WAREHOUSE_CONFIG"
# The known WAREHOUSE_* names are the fields of Settings (a new setting is a new field, nothing
# more) and these, which are read elsewhere: anything else is reported at start as a likely typo.
OTHER_VARIABLES = (
    CONFIG_FILE_VARIABLE,
    "WAREHOUSE_TEST_DATABASE_URL",  # the test suite's and the benchmark's PostgreSQL server
)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TRUE_WORDS = ("1", "true", "yes")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Unquoted, PostgreSQL folds a name to lower case; quoted, it does not: only a name that reads the
# same both ways is safe in every statement. pg_ names are reserved for the system.
_SCHEMA_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")
_TIME = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
# An SSH host key fingerprint as `ssh-keygen -lf` prints it: SHA256 in base64 without padding.
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}=?")


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: SecretStr
    db_schema: str = "warehouse"
    invoice_view: str = "public.invoice_view"
    export_columns: Tuple[str, ...] = (
        "invoice_number",
        "invoice_date",
        "customer_code",
        "customer_name",
        "delivery_address",
        "quantity",
        "value",
    )
    export_name: str = "Spedizioni{date}_{records}.txt"
    inbound_ftp_url: SecretStr
    outbound_ftp_url: SecretStr
    ftp_timeout: float = 30.0
    remote_log_fs: SecretStr
    remote_log_path: str
    remote_log_pattern: str = r"(?P<file>\S+): (?P<records>\d+) records read"
    remote_log_error_pattern: str = r"(?P<file>\S+): ERROR"
    remote_log_timeout: float = 900.0
    remote_log_interval: float = 15.0
    smtp_url: SecretStr
    mail_from: str
    mail_to: Tuple[str, ...]
    templates_dir: Optional[Path] = None
    timezone: str = "Europe/Rome"
    # A testing aid, never set in production: the clock starts at this local time and runs on.
    clock_start: Optional[dt.datetime] = None
    poll_window: Tuple[dt.time, dt.time] = (dt.time(8, 0), dt.time(20, 0))
    poll_every_minutes: int = 30
    poll_days: FrozenSet[int] = frozenset(range(5))
    no_file_alert_at: dt.time = dt.time(19, 0)
    data_dir: Path = Path("./var")
    secret_key: Optional[SecretStr] = None
    operators: Dict[str, SecretStr] = {}
    max_upload_mb: int = 50
    holidays: Optional[Holidays] = None
    archive_keep_days: int = 0
    remote_log_host_key: Tuple[str, ...] = Field(default=(), validate_default=True)
    ca_file: Optional[Path] = None
    trusted_proxy: Optional[str] = None

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if urlsplit(value.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        _check_ports(value.get_secret_value())
        return value

    @field_validator("inbound_ftp_url", "outbound_ftp_url")
    @classmethod
    def _ftp_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("ftp", "ftps") or not parts.hostname:
            raise ValueError("must be ftp://user:pass@host:port/dir or ftps://…")
        _check_ports(value.get_secret_value())
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr) -> SecretStr:
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://user:pass@host:port or smtps://…")
        _check_ports(value.get_secret_value())
        if parts.scheme == "smtp" and parts.password and not smtp_starttls(value.get_secret_value()):
            raise ValueError(
                "has a password but neither smtps:// nor ?starttls=true: the password would cross the network in clear"
            )
        return value

    @field_validator("remote_log_fs")
    @classmethod
    def _fs_url(cls, value: SecretStr) -> SecretStr:
        if "://" not in value.get_secret_value():
            raise ValueError("must be a pyfilesystem2 URL such as ssh://user@host:22/ or osfs:///path")
        _check_ports(value.get_secret_value())
        return value

    @field_validator("db_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        if not _SCHEMA_NAME.fullmatch(value):
            raise ValueError(
                "must be a lower-case SQL identifier (a-z, 0-9 and _, at most 63 characters, not starting with pg_)"
            )
        return value

    @field_validator("invoice_view")
    @classmethod
    def _view_name(cls, value: str) -> str:
        if not all(_IDENTIFIER.fullmatch(part) for part in value.split(".")) or value.count(".") > 1:
            raise ValueError("must be name or schema.name")
        return value

    @field_validator("export_columns", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not value or not all(_IDENTIFIER.fullmatch(item) for item in value):
            raise ValueError("must be a comma-separated list of column names")
        return value

    @field_validator("export_name")
    @classmethod
    def _export_name(cls, value: str) -> str:
        try:
            sample = value.format(date="20260101", records=1)
        except (KeyError, IndexError, ValueError):
            raise ValueError("may only use the placeholders {date} and {records}") from None
        if "/" in sample or "\\" in sample or sample in ("", ".", ".."):
            raise ValueError("must be a plain file name")
        return value

    @field_validator("remote_log_pattern", "remote_log_error_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error:
            raise ValueError("is not a valid regular expression") from None
        if "file" not in compiled.groupindex:
            raise ValueError("needs a (?P<file>…) group")
        return value

    @field_validator("remote_log_pattern")
    @classmethod
    def _records_group(cls, value: str) -> str:
        if "records" not in re.compile(value).groupindex:
            raise ValueError("needs a (?P<records>…) group")
        return value

    @field_validator("ftp_timeout", "remote_log_timeout", "remote_log_interval")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a number of seconds above 0")
        return value

    @field_validator("poll_every_minutes")
    @classmethod
    def _every(cls, value: int) -> int:
        if not 1 <= value <= 720:
            raise ValueError("must be between 1 and 720 minutes")
        return value

    @field_validator("max_upload_mb")
    @classmethod
    def _upload_limit(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("holidays", mode="before")
    @classmethod
    def _holidays(cls, value: Any) -> Any:
        return Holidays.parse(value) if isinstance(value, str) else value

    @field_validator("archive_keep_days")
    @classmethod
    def _keep_days(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be a number of days, 0 to keep everything")
        return value

    @field_validator("mail_to", mode="before")
    @classmethod
    def _recipients(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not value or not all("@" in item for item in value):
            raise ValueError("must be a comma-separated list of mail addresses")
        return value

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("must be a mail address")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zone(value)
        except Exception:
            raise ValueError("is not a known time zone") from None
        return value

    @field_validator("poll_window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if isinstance(value, str):
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError("must be HH:MM-HH:MM")
            value = (_parse_time(start), _parse_time(end))
        if value[0] > value[1]:
            raise ValueError("must start before it ends")
        return value

    @field_validator("no_file_alert_at", mode="before")
    @classmethod
    def _alert_time(cls, value: Any) -> Any:
        return _parse_time(value) if isinstance(value, str) else value

    @field_validator("poll_days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        return _parse_days(value) if isinstance(value, str) else value

    @field_validator("operators", mode="before")
    @classmethod
    def _operators(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        operators = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            user, sep, password_hash = item.partition(":")
            if not sep or not user or not password_hash:
                raise ValueError("must be user:hash,… with werkzeug password hashes")
            operators[user] = password_hash
        return operators

    @field_validator("remote_log_host_key", mode="before")
    @classmethod
    def _host_key_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        fingerprints = []
        for item in value:
            if not _FINGERPRINT.fullmatch(item):
                raise ValueError("must be SHA256:… fingerprints as `ssh-keygen -lf` prints them, comma-separated")
            fingerprints.append(item.rstrip("="))
        return fingerprints

    @field_validator("remote_log_host_key")
    @classmethod
    def _host_key_for_ssh(cls, value: Tuple[str, ...], info: ValidationInfo) -> Tuple[str, ...]:
        remote = info.data.get("remote_log_fs")
        if remote is None or value:
            return value
        parts = urlsplit(remote.get_secret_value())
        if parts.scheme != "ssh":
            return value
        raise ValueError(
            "is required for an ssh:// remote log (no host key is trusted blindly): read the server's "
            "fingerprints with `ssh-keyscan {}{} | ssh-keygen -lf -` from a network you trust (or ask "
            "its administrator) and set the SHA256:… value".format(
                "-p {} ".format(parts.port) if parts.port and parts.port != 22 else "", parts.hostname or "HOST"
            )
        )

    @field_validator("ca_file")
    @classmethod
    def _ca_bundle(cls, value: Optional[Path]) -> Optional[Path]:
        if value is None:
            return value
        try:
            ssl.create_default_context(cafile=str(value))
        except (OSError, ssl.SSLError):
            raise ValueError("must name a readable PEM file of CA certificates") from None
        return value

    @field_validator("trusted_proxy")
    @classmethod
    def _proxy_address(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("must be the reverse proxy's IP address as the service sees it, e.g. 127.0.0.1") from None

    @property
    def zone(self) -> Any:
        return zone(self.timezone)

    @property
    def holiday_calendar(self) -> Holidays:
        return self.holidays or Holidays()

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def _check_ports(url: str) -> None:
    """A port, where the URL has one, between 1 and 65535 (libpq URLs may list several hosts)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    for host in netloc.split(","):
        try:
            port = urlsplit("//" + host).port
        except ValueError:
            port = 0
        if port == 0:
            raise ValueError("has a port that is not a number between 1 and 65535")


def smtp_starttls(url: str) -> bool:
    """Whether an smtp:// URL asks for STARTTLS (``?starttls=true``)."""
    return parse_qs(urlsplit(url).query).get("starttls", ["false"])[0].lower() in TRUE_WORDS


def _parse_time(text: str) -> dt.time:
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError("must be a time HH:MM")
    return dt.time(int(match.group(1)), int(match.group(2)))


def _parse_days(text: str) -> FrozenSet[int]:
    days: Set[int] = set()
    for item in filter(None, (part.strip().lower() for part in text.split(","))):
        first, sep, last = item.partition("-")
        if first not in DAY_NAMES or (sep and last not in DAY_NAMES):
            raise ValueError("must be day names such as mon-fri or mon,wed,fri")
        start = DAY_NAMES.index(first)
        end = DAY_NAMES.index(last) if sep else start
        days.update(range(start, end + 1) if start <= end else list(range(start, 7)) + list(range(end + 1)))
    if not days:
        raise ValueError("must name at least one day")
    return frozenset(days)


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


def variable_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def known_variables() -> FrozenSet[str]:
    return frozenset(variable_name(name) for name in Settings.model_fields) | frozenset(OTHER_VARIABLES)


def warn_about_unknown_variables(names: Iterable[str]) -> None:
    """A misspelled key silently falls back to its default: name it, and the closest known name."""
    known = known_variables()
    for name in sorted(set(names) - known):
        closest = difflib.get_close_matches(name, sorted(known), n=1)
        log.warning(
            "%s is not a setting of the warehouse service and is ignored%s",
            name,
            "; did you mean {}?".format(closest[0]) if closest else "",
        )


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from the environment over the optional WAREHOUSE_CONFIG file; one error for all bad keys."""
    environ = os.environ if environ is None else environ
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
    warn_about_unknown_variables(values)
    fields: Dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = values.get(variable_name(name))
        if raw is not None and raw != "":
            fields[name] = raw
    try:
        return Settings(**fields)
    except ValidationError as error:
        raise ConfigurationError(describe_errors(error)) from None


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


def ftp_parts(url: SecretStr) -> Dict[str, Any]:
    """host, port, user, password, directory and tls of an ftp:// or ftps:// URL."""
    parts = urlsplit(url.get_secret_value())
    return {
        "host": parts.hostname or "",
        "port": parts.port or 21,
        "user": unquote(parts.username or "anonymous"),
        "password": unquote(parts.password or ""),
        "directory": unquote(parts.path or "/") or "/",
        "tls": parts.scheme == "ftps",
    }


def redact_url(url: str) -> str:
    """The URL with its password masked and its query dropped, for log lines and errors."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = "{}:{}".format(netloc, parts.port)
    if parts.username:
        netloc = "{}:***@{}".format(parts.username, netloc)
    return "{}://{}{}".format(parts.scheme, netloc, parts.path)
