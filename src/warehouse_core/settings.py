"""The ``WAREHOUSE_*`` variables as one validated pydantic model.

Secrets (the database URL, the secret key, operator hashes) are ``SecretStr`` and the servers'
passwords live in their endpoints (``warehouse_core.endpoints``) out of every repr: they never show
in a log line or an error message. Where the values come from: ``warehouse_core.environment``; how
a variable's text is read: ``warehouse_core.setting_values``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from warehouse_core import setting_values as values
from warehouse_core.clock import zone
from warehouse_core.endpoints import FtpEndpoint, RemoteLogEndpoint, SmtpEndpoint, check_ports
from warehouse_core.environment import (
    OTHER_VARIABLES,
    describe_errors,
    variable_name,
    warehouse_variables,
    warn_about_unknown_variables,
)
from warehouse_core.errors import ConfigurationError
from warehouse_core.holidays import Holidays

# Unquoted, PostgreSQL folds a name to lower case; quoted, it does not: only a name that reads the
# same both ways is safe in every statement. pg_ names are reserved for the system.
_SCHEMA_NAME = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")


def _endpoint(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    return lambda value: parse(value) if isinstance(value, str) else value


# The variables whose text is read by a parser of its own (setting_values, the endpoints, the
# holiday calendar) before the field's type is checked.
TEXT_VALUES: Dict[str, Callable[[Any], Any]] = {
    "inbound_ftp_url": _endpoint(FtpEndpoint.parse),
    "outbound_ftp_url": _endpoint(FtpEndpoint.parse),
    "smtp_url": _endpoint(SmtpEndpoint.parse),
    "remote_log_fs": _endpoint(RemoteLogEndpoint.parse),
    "export_columns": values.columns,
    "mail_to": values.recipients,
    "poll_window": values.window,
    "no_file_alert_at": values.time_of_day,
    "poll_days": values.days,
    "operators": values.operators,
    "remote_log_host_key": values.fingerprints,
    "holidays": lambda value: Holidays.parse(value) if isinstance(value, str) else value,
}


class Settings(BaseModel):
    # The endpoints are plain frozen dataclasses, parsed from their URL by _from_text below.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

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
    inbound_ftp_url: FtpEndpoint
    outbound_ftp_url: FtpEndpoint
    ftp_timeout: float = 30.0
    remote_log_fs: RemoteLogEndpoint
    remote_log_path: str
    remote_log_pattern: str = r"(?P<file>\S+): (?P<records>\d+) records read"
    remote_log_error_pattern: str = r"(?P<file>\S+): ERROR"
    remote_log_timeout: float = 900.0
    remote_log_interval: float = 15.0
    smtp_url: SmtpEndpoint
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
    # The language of the page, the refusals, the history and the mails: its catalogue is checked at start.
    language: str = "en"

    @field_validator(*TEXT_VALUES, mode="before")
    @classmethod
    def _from_text(cls, value: Any, info: ValidationInfo) -> Any:
        """A variable's text read into its value; each server's URL parsed once into its endpoint,
        which the adapters take as it is."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return TEXT_VALUES[str(info.field_name)](value)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if urlsplit(value.get_secret_value()).scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        check_ports(value.get_secret_value())
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
        if not all(values.IDENTIFIER.fullmatch(part) for part in value.split(".")) or value.count(".") > 1:
            raise ValueError("must be name or schema.name")
        return value

    @field_validator("export_name")
    @classmethod
    def _export_name(cls, value: str) -> str:
        try:
            sample = value.format(date="20260101", records=1)
        except (KeyError, IndexError, ValueError):
            raise ValueError("may only use the placeholders {date} and {records}") from None
        if "{date}" not in value:
            raise ValueError("must hold {date}: without it every day uploads under one temporary name")
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

    @field_validator(*values.NUMBER_RULES)
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        allowed, refusal = values.NUMBER_RULES[str(info.field_name)]
        if not allowed(value):
            raise ValueError(refusal)
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

    @field_validator("remote_log_host_key")
    @classmethod
    def _host_key_for_ssh(cls, value: Tuple[str, ...], info: ValidationInfo) -> Tuple[str, ...]:
        remote = info.data.get("remote_log_fs")
        if remote is None or value or remote.ssh is None:
            return value
        raise ValueError(
            "is required for an ssh:// remote log (no host key is trusted blindly): read the server's "
            "fingerprints with `{} | ssh-keygen -lf -` from a network you trust (or ask "
            "its administrator) and set the SHA256:… value".format(remote.keyscan_hint())
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


def known_variables() -> FrozenSet[str]:
    """The fields of Settings (a new setting is a new field, nothing more) and the variables read elsewhere."""
    return frozenset(variable_name(name) for name in Settings.model_fields) | frozenset(OTHER_VARIABLES)


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Settings from the environment over the optional WAREHOUSE_CONFIG file; one error for all bad keys."""
    values = warehouse_variables(os.environ if environ is None else environ)
    warn_about_unknown_variables(values, known_variables())
    fields: Dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = values.get(variable_name(name))
        if raw is not None and raw != "":
            fields[name] = raw
    try:
        return Settings(**fields)
    except ValidationError as error:
        raise ConfigurationError(describe_errors(error)) from None
