"""The delivery ledger as a state machine (issue 18): days whose files share invoices, two workers
over one database, midnights in the middle of a session, an outbound server that stops answering
at any step, a customer template that breaks, Close, retry and Start of earlier days. After every
step the ledger's promises (SPEC §5) are checked against what really reached the consumer:

- every invoice reached the consumer in the files of at most one day (never shipped twice; a
  ``--redeliver`` is not drawn here), and every invoice is in at most one export whose delivery
  is ``yes`` or ``unknown``;
- only a day whose delivery is ``yes`` or ``unknown`` holds invoices (a ``no`` released them),
  and a day whose file reached the consumer is never ``no``;
- every change of a day's delivery follows delivery_states.DELIVERY_TRANSITIONS;
- no day is ``running`` after an undisturbed round (the server answering, no worker killed).

The finer predictions of a day's life (mails, details, timeouts) are test_day_in_the_life.py's.
``make test`` runs LEDGER_EXAMPLES examples, derandomized; ``make soak`` thousands.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tests.conftest import SAMPLE_VIEW, at, settings_values
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeExportFiles,
    FakeInbound,
    FakeMailer,
    FakeOutbound,
    FakeRemoteLog,
    FakeStore,
    WorkerKilled,
)
from warehouse_core.bootstrap import Core, bootstrap
from warehouse_core.delivery_states import DELIVERY_TRANSITIONS, HOLDING, Delivery
from warehouse_core.errors import Conflict, TransferError
from warehouse_core.model import SessionState
from warehouse_core.settings import Settings

LEDGER_EXAMPLES = 100
STEPS = 30
FIRST_DAY = dt.date(2026, 11, 26)
POOL = tuple(sorted(SAMPLE_VIEW))  # every invoice the view knows
CONSUMER = ("ok", "ok", "silent", "error")
SERVER = (
    "answers",
    "answers",
    "silent",
    "silent before the rename",
    "silent after the rename",
    "loses the rename reply",
    "an operator closes at the rename",
)


def reachable(before: Optional[Delivery]) -> Set[Optional[Delivery]]:
    seen: Set[Optional[Delivery]] = {before}
    frontier = [before]
    while frontier:
        for after in DELIVERY_TRANSITIONS[frontier.pop()]:
            if after not in seen:
                seen.add(after)
                frontier.append(after)
    return seen


class LedgerLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = FakeStore(invoice_view=SAMPLE_VIEW)
        self.outbound = FakeOutbound()
        self.remote_log = FakeRemoteLog()
        self.clock = FakeClock(at(FIRST_DAY.isoformat() + "T09:00"))
        self.inbound = FakeInbound()  # unused: files come by upload, whatever the hour
        self.templates = Path(self._folder()) / "templates"
        (self.templates / "mail").mkdir(parents=True, exist_ok=True)
        # Two service processes over one database and one outbound server, each with its worker.
        self.cores = [self._core(), self._core()]
        self.outbound.on_upload = self._consumer
        self.outbound.on_renaming = self._renaming
        self.reached: Dict[str, Set[dt.date]] = {}  # invoice -> the days whose files reached the consumer
        self.deliveries: Dict[dt.date, Optional[Delivery]] = {}
        self.server = "answers"
        self.consumer: Dict[dt.date, str] = {}
        self.serial = 0

    def _folder(self) -> str:
        self.folder = tempfile.mkdtemp(prefix="ledger-life-")
        return self.folder

    def _core(self) -> Core:
        config = Settings(
            **settings_values(
                remote_log_path="importer-{date}.log",
                remote_log_timeout=60.0,
                remote_log_interval=15.0,
                data_dir="/nonexistent/model",
                templates_dir=str(self.templates),
            )
        )
        return bootstrap(
            config,
            store=self.store,
            inbound=self.inbound,
            archive=FakeArchive(),
            mailer=FakeMailer(),
            clock=self.clock,
            outbound=self.outbound,
            remote_log=self.remote_log,
            exports=self.exports if hasattr(self, "exports") else self._exports(),
        )

    def _exports(self) -> FakeExportFiles:
        self.exports = FakeExportFiles()
        return self.exports

    @property
    def today(self) -> dt.date:
        return self.clock.now().date()

    def _session(self, day: dt.date) -> Any:
        return self.store.data.sessions.get(day)

    # --- the world ------------------------------------------------------------------------

    def _consumer(self, name: str, data: bytes) -> None:
        day = dt.datetime.strptime(name[len("Spedizioni") : len("Spedizioni") + 8], "%Y%m%d").date()
        for line in data.decode("utf-8").splitlines():
            self.reached.setdefault(line.split("|")[0], set()).add(day)
        verdict = self.consumer.get(day, "ok")
        lines = len(data.splitlines())
        if verdict == "ok":
            self.remote_log.append("importer-{:%Y%m%d}.log".format(day), "{}: {} records read".format(name, lines))
        elif verdict == "error":
            self.remote_log.append("importer-{:%Y%m%d}.log".format(day), "{}: ERROR line 1".format(name))
        if self.server == "silent after the rename":
            self.outbound.unreachable = True
            raise TransferError("RNTO {}: the connection was reset".format(name))

    def _renaming(self, name: str) -> None:
        """Right after the check before the rename, before the rename itself."""
        if self.server == "silent before the rename":
            self.outbound.refuse_rename_next = 1
            self.outbound.unreachable = True
        elif self.server == "an operator closes at the rename":
            day = dt.datetime.strptime(name[len("Spedizioni") : len("Spedizioni") + 8], "%Y%m%d").date()
            self.cores[1].close_session(self.clock.now(), actor="ops", day=day)

    @initialize()
    def begin(self) -> None:
        self.clock.set(at(FIRST_DAY.isoformat() + "T09:00"))

    @rule(invoices=st.lists(st.sampled_from(POOL), min_size=1, max_size=4), consumer=st.sampled_from(CONSUMER))
    def a_day_begins(self, invoices: List[str], consumer: str) -> None:
        """Today's file (its invoices shared with other days' at will) is uploaded, and Start pressed."""
        self.serial += 1
        lines = ["{}|1|Pane|1.00".format(invoice) for invoice in invoices]
        name = "Letture{}{:09d}_{}.txt".format(self.today.strftime("%Y%m%d"), self.serial, len(lines) - 1)
        try:
            self.cores[0].import_upload(name, io.BytesIO("\n".join(lines).encode("utf-8")), self.clock.now())
        except Conflict:
            pass
        self.start(consumer, False)

    @rule(consumer=st.sampled_from(CONSUMER), earlier=st.booleans())
    def start(self, consumer: str, earlier: bool) -> None:
        """Start today's session, or the oldest retried earlier day's."""
        day = self.today
        if earlier:
            retried = [s.day for s in self._attention() if s.state is SessionState.READY]
            if not retried:
                return
            day = retried[0]
        try:
            self.cores[0].start_session(self.clock.now(), day=day)
        except Conflict:
            return
        self.consumer[day] = consumer

    @rule(which=st.integers(0, 3))
    def close(self, which: int) -> None:
        """Close today's session or an earlier day's that needs someone."""
        days = [self.today] + [s.day for s in self._attention()]
        try:
            self.cores[1].close_session(self.clock.now(), actor="ops", day=days[which % len(days)])
        except Conflict:
            pass

    @rule(which=st.integers(0, 3))
    def retry(self, which: int) -> None:
        failed = sorted(d for d, s in self.store.data.sessions.items() if s.state is SessionState.FAILED)
        if not failed:
            return
        try:
            self.cores[0].retry_session(failed[which % len(failed)], "model", "cli:ops", self.clock.now())
        except (Conflict, TransferError):
            pass

    @rule(server=st.sampled_from(SERVER))
    def the_outbound_server(self, server: str) -> None:
        self.server = server
        self.outbound.unreachable = server == "silent"
        self.outbound.lose_rename_reply_next = 1 if server == "loses the rename reply" else 0

    @rule(broken=st.booleans())
    def a_customer_template(self, broken: bool) -> None:
        path = self.templates / "mail" / "session-failed.txt"
        if broken:
            path.write_text("{{ day.isoformat( }}\n")
        elif path.exists():
            path.unlink()

    @rule(worker=st.integers(0, 1), other_holds=st.booleans(), kill_at=st.sampled_from((None, 1, 3)))
    def work(self, worker: int, other_holds: bool, kill_at: Optional[int]) -> None:
        """One round of a worker; the other process may hold the oldest running day meanwhile
        (it is at it), and the worker may be killed at a wait."""
        waits = [0]

        def wait(seconds: float) -> bool:
            waits[0] += 1
            if kill_at is not None and waits[0] == kill_at:
                raise WorkerKilled("killed by the model")
            return self.clock.wait(seconds)

        running = sorted(d for d, s in self.store.data.sessions.items() if s.state is SessionState.RUNNING)
        try:
            if other_holds and running:
                with self.store.claim_session(running[0]):
                    self.cores[worker].run_session.run_pending(wait)
            else:
                self.cores[worker].run_session.run_pending(wait)
        except WorkerKilled:
            return
        if not other_holds and kill_at is None and self.server == "answers":
            self._undisturbed_round(worker)

    def _undisturbed_round(self, worker: int) -> None:
        """An undisturbed round (the server answering): no day is left running."""
        for _ in range(2):  # a day that waited for an earlier one is worked in the next round
            self.cores[worker].run_session.run_pending(self.clock.wait)
        stuck = [d for d, s in self.store.data.sessions.items() if s.state is SessionState.RUNNING]
        assert not stuck, "running after an undisturbed round: {}".format([self._session(d) for d in stuck])

    @rule(worker=st.integers(0, 1))
    def work_undisturbed(self, worker: int) -> None:
        self.work(worker, False, None)

    @rule(hours=st.sampled_from((6, 24)))
    def time_passes(self, hours: int) -> None:
        """Hours later: midnight may pass in the middle of a session."""
        self.clock.set(self.clock.now() + dt.timedelta(hours=hours))

    def _attention(self) -> List[Any]:
        with self.store.unit_of_work() as uow:
            return uow.days_needing_attention(self.today, self.today - dt.timedelta(days=30))

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def every_invoice_reached_the_consumer_from_at_most_one_day(self) -> None:
        for invoice, days in self.reached.items():
            assert len(days) <= 1, "{} reached the consumer from {}".format(invoice, sorted(days))

    @invariant()
    def every_invoice_is_in_at_most_one_export_whose_delivery_is_yes_or_unknown(self) -> None:
        owners: Dict[str, dt.date] = {}
        for day, session in self.store.data.sessions.items():
            if session.delivery not in HOLDING or not session.export_file:
                continue
            if (day, session.export_file) not in self.exports.files:
                continue
            for line in self.exports.lines(day, session.export_file):
                invoice = line.split("|")[0]
                assert owners.setdefault(invoice, day) == day, "{} in the exports of {} and {}".format(
                    invoice, owners[invoice], day
                )

    @invariant()
    def only_yes_or_unknown_days_hold_and_a_delivered_day_is_never_no(self) -> None:
        for invoice, day in self.store.data.exported:
            delivery = self._session(day).delivery
            assert delivery in HOLDING, "{} held by {} whose delivery is {}".format(invoice, day, delivery)
        for invoice, days in self.reached.items():
            for day in days:
                assert self._session(day).delivery in HOLDING, "{} reached the consumer, yet {} is {}".format(
                    day, invoice, self._session(day).delivery
                )

    @invariant()
    def every_delivery_change_follows_the_table(self) -> None:
        for day, session in self.store.data.sessions.items():
            before = self.deliveries.get(day)
            assert session.delivery in reachable(before), "{}: {} -> {}".format(day, before, session.delivery)
            self.deliveries[day] = session.delivery

    def teardown(self) -> None:
        """Once the server answers again and every unknown day is settled, nothing stays held by a
        day whose file never arrived, and no day is running."""
        try:
            self.the_outbound_server("answers")
            self._undisturbed_round(0)
            with self.store.unit_of_work() as uow:
                assert uow.unknown_delivery_days() == [], "still unknown with the server answering"
            self.only_yes_or_unknown_days_hold_and_a_delivered_day_is_never_no()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            super().teardown()


def _default_profile() -> bool:
    return settings.default.max_examples == settings.get_profile("default").max_examples


TestLedgerLife = LedgerLife.TestCase
TestLedgerLife.settings = settings(
    max_examples=LEDGER_EXAMPLES if _default_profile() else settings.default.max_examples,
    stateful_step_count=STEPS,
    derandomize=_default_profile(),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
