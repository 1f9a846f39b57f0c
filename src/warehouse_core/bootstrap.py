"""The composition root: the one place that builds the real adapters and wires the use cases."""

from __future__ import annotations

import datetime as dt
import gettext
import logging
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Tuple

from warehouse_core.adapters.catalogues import load_translations
from warehouse_core.adapters.fs_remote_log import FsRemoteLog
from warehouse_core.adapters.ftplib_files import FtplibFiles
from warehouse_core.adapters.jinja_mail import JinjaMailRenderer
from warehouse_core.adapters.jinja_sentences import JinjaSentences
from warehouse_core.adapters.local_archive import LocalArchive, LocalExportFiles
from warehouse_core.adapters.postgres import PsycopgStore
from warehouse_core.adapters.probes import Probe, database_probe, probes_for
from warehouse_core.adapters.smtp_mailer import SmtpMailer
from warehouse_core.adapters.system_clock import SystemClock
from warehouse_core.errors import ConfigurationError
from warehouse_core.metrics import MetricsSnapshot
from warehouse_core.model import WorkSession
from warehouse_core.ports import (
    Archive,
    Clock,
    ExportFiles,
    InboundFiles,
    Mailer,
    MailRenderer,
    OutboundFiles,
    RemoteLog,
    Sentences,
    Store,
)
from warehouse_core.settings import Settings
from warehouse_core.usecases.checks import CheckDependencies
from warehouse_core.usecases.cleanup import CleanUp
from warehouse_core.usecases.deliver_outbox import DeliverOutbox
from warehouse_core.usecases.earlier_days import Status
from warehouse_core.usecases.earlier_days import metrics_snapshot as earlier_metrics_snapshot
from warehouse_core.usecases.earlier_days import status as earlier_status
from warehouse_core.usecases.import_upload import ImportUpload
from warehouse_core.usecases.ingest_daily_file import IngestDailyFile
from warehouse_core.usecases.mails import mail_template_sample
from warehouse_core.usecases.retry import RetrySession
from warehouse_core.usecases.run_session import RunSession, SessionConfig
from warehouse_core.usecases.schedule import PollSchedule
from warehouse_core.usecases.sessions import CloseSession, StartSession, session_status

log = logging.getLogger(__name__)
# How long a connection to PostgreSQL may take before the database counts as down. SPEC §8 has no
# setting for it, and WAREHOUSE_FTP_TIMEOUT (30 s, sized for slow transfers) would hold /healthz
# and every page that long while the database host is silent (SPEC §10: 503 within the connect
# timeout). A PostgreSQL that answers at all connects in milliseconds.
DATABASE_CONNECT_TIMEOUT_SECONDS = 5


@dataclass
class Core:
    """Everything an entry point needs: the wired use cases and the ports they share."""

    settings: Settings
    store: Store
    clock: Clock
    sentences: Sentences
    # The catalogue of WAREHOUSE_LANGUAGE, for the web page's templates.
    translations: gettext.NullTranslations
    schedule: PollSchedule
    ingest_daily_file: IngestDailyFile
    import_upload: ImportUpload
    deliver_outbox: DeliverOutbox
    start_session: StartSession
    close_session: CloseSession
    run_session: RunSession
    retry_session: RetrySession
    clean_up: CleanUp
    check_dependencies: CheckDependencies
    archive: Archive
    exports: ExportFiles
    # Set when a session starts, so that a waiting worker begins at once.
    session_wakeup: threading.Event = field(default_factory=threading.Event)

    def session_status(self, day: Optional[dt.date] = None) -> WorkSession:
        return session_status(self.store, day or self.clock.now().date())

    def status(self, today: Optional[dt.date] = None) -> Status:
        """Today's session and the earlier days that still need someone (SPEC §5, §7)."""
        return earlier_status(self.store, today or self.clock.now().date())

    def metrics_snapshot(self, today: dt.date) -> MetricsSnapshot:
        return earlier_metrics_snapshot(self.store, today)

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def invoice_view_problem(store: Store, settings: Settings) -> Optional[str]:
    """Why the invoice view cannot serve the import and the export, or None (checked at start, SPEC §8)."""
    missing = store.missing_view_columns(settings.export_columns)
    if not missing:
        return None
    exported = [column for column in settings.export_columns if column in missing]
    reasons = []
    if exported:
        reasons.append(
            "WAREHOUSE_EXPORT_COLUMNS names columns that the invoice view {} does not have: {}".format(
                settings.invoice_view, ", ".join(exported)
            )
        )
    others = [column for column in missing if column not in exported]
    if others:
        reasons.append(
            "WAREHOUSE_INVOICE_VIEW names {}, which lacks the columns the import needs: {}".format(
                settings.invoice_view, ", ".join(others)
            )
        )
    return "; ".join(reasons)


def bootstrap(
    settings: Settings,
    *,
    store: Optional[Store] = None,
    inbound: Optional[InboundFiles] = None,
    archive: Optional[Archive] = None,
    mailer: Optional[Mailer] = None,
    outbound: Optional[OutboundFiles] = None,
    remote_log: Optional[RemoteLog] = None,
    exports: Optional[ExportFiles] = None,
    renderer: Optional[MailRenderer] = None,
    sentences: Optional[Sentences] = None,
    clock: Optional[Clock] = None,
    probes: Optional[Mapping[str, Probe]] = None,
    migrate: bool = True,
    check_view: bool = True,
) -> Core:
    """Wire the use cases; any port not given is built from the settings. Connects lazily.

    ``migrate`` and ``check_view`` are what a starting service does: bring the schema up to date,
    and refuse to start when the invoice view lacks a column the import or the export needs.

    ``probes`` replace the dependency checks built for the real adapters (fakes have none).
    """
    if store is None:
        store = PsycopgStore(
            settings.database_url.get_secret_value(),
            schema=settings.db_schema,
            invoice_view=settings.invoice_view,
            connect_timeout=DATABASE_CONNECT_TIMEOUT_SECONDS,
            timezone=settings.timezone,
        )
    tls = tls_context(settings)
    if inbound is None:
        inbound = FtplibFiles.from_endpoint(settings.inbound_ftp_url, timeout=settings.ftp_timeout, ssl_context=tls)
    if outbound is None:
        outbound = FtplibFiles.from_endpoint(settings.outbound_ftp_url, timeout=settings.ftp_timeout, ssl_context=tls)
    if remote_log is None:
        remote_log = FsRemoteLog(
            settings.remote_log_fs,
            timeout=settings.ftp_timeout,
            host_keys=settings.remote_log_host_key,
        )
    if archive is None:
        archive = LocalArchive(settings.data_dir)
    if exports is None:
        exports = LocalExportFiles(settings.data_dir)
    if mailer is None:
        mailer = SmtpMailer(
            settings.smtp_url,
            settings.mail_from,
            settings.mail_to,
            timeout=settings.ftp_timeout,
            ssl_context=tls,
        )
    translations = load_translations(settings.language, settings.templates_dir)
    if renderer is None:
        mail_templates = JinjaMailRenderer(settings.templates_dir, translations, settings.language)
        mail_templates.check(mail_template_sample)  # SPEC §8: a broken template stops the start
        renderer = mail_templates
    if sentences is None:
        sentences = JinjaSentences(settings.templates_dir, translations, settings.language)
    if clock is None:
        clock = SystemClock(settings.zone, start=settings.clock_start)
        if settings.clock_start is not None:
            log.warning(
                "WAREHOUSE_CLOCK_START is set (a testing aid): the clock started at %s", clock.now().isoformat()
            )
    if migrate:
        store.migrate()
    if check_view:
        problem = invoice_view_problem(store, settings)
        if problem is not None:
            raise ConfigurationError("invalid configuration: " + problem)
    schedule = PollSchedule(
        window=settings.poll_window,
        days=settings.poll_days,
        every_minutes=settings.poll_every_minutes,
        alert_at=settings.no_file_alert_at,
        holidays=settings.holiday_calendar,
    )
    session_config = SessionConfig(
        export_columns=settings.export_columns,
        export_name=settings.export_name,
        remote_log_path=settings.remote_log_path,
        success_pattern=settings.remote_log_pattern,
        error_pattern=settings.remote_log_error_pattern,
        log_timeout=settings.remote_log_timeout,
        log_interval=settings.remote_log_interval,
    )
    wakeup = threading.Event()
    core = Core(
        settings=settings,
        store=store,
        clock=clock,
        sentences=sentences,
        translations=translations,
        schedule=schedule,
        ingest_daily_file=IngestDailyFile(
            store=store, inbound=inbound, archive=archive, renderer=renderer, schedule=schedule
        ),
        import_upload=ImportUpload(
            store=store, archive=archive, renderer=renderer, max_bytes=settings.max_upload_bytes
        ),
        deliver_outbox=DeliverOutbox(store=store, mailer=mailer),
        start_session=StartSession(store=store, wake_worker=wakeup.set),
        close_session=CloseSession(store=store, outbound=outbound),
        retry_session=RetrySession(store=store, exports=exports, renderer=renderer, outbound=outbound),
        clean_up=CleanUp(store=store, archive=archive, exports=exports, keep_days=settings.archive_keep_days),
        check_dependencies=CheckDependencies(
            store=store,
            probes=dict(
                probes_for(
                    _todays_log(settings.remote_log_path, clock),
                    inbound_ftp=inbound,
                    outbound_ftp=outbound,
                    smtp=mailer,
                    remote_log=remote_log,
                ),
                database=database_probe(store.ping),
            )
            if probes is None
            else probes,
        ),
        archive=archive,
        exports=exports,
        run_session=RunSession(
            store=store,
            exports=exports,
            outbound=outbound,
            remote_log=remote_log,
            renderer=renderer,
            clock=clock,
            config=session_config,
        ),
        session_wakeup=wakeup,
    )
    if migrate:  # a starting service: what a killed poll left goes, as each poll clears it too
        core.ingest_daily_file.clear_stale_downloads()
    return core


def _todays_log(template: str, clock: Clock) -> Callable[[], Tuple[str, bool]]:
    """The remote log's path today (SPEC §8: it may hold ``{date}``), and whether it names the day."""

    def todays() -> Tuple[str, bool]:
        return template.format(date=clock.now().strftime("%Y%m%d")), "{date}" in template

    return todays


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS client context of FTPS and SMTPS: certificates and host names checked against
    WAREHOUSE_CA_FILE when it is set, else against the system's trust store."""
    if settings.ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    return ssl.create_default_context()
