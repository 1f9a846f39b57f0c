"""The delivery ledger on PostgreSQL (issue 18 items 1 and 2): the use cases over the real store,
the outbound server and the remote log faked (their real adapters have their own contract suites,
the ledger's verdicts included: tests/contract/test_outbound_files_contract.py)."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from tests.conftest import VALID_SAMPLE, at
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeExportFiles,
    FakeInbound,
    FakeMailer,
    FakeOutbound,
    FakeRemoteLog,
    WorkerKilled,
)
from warehouse_core.bootstrap import bootstrap
from warehouse_core.delivery_states import Delivery
from warehouse_core.model import InvoiceStatus, SessionState

DAY, NEXT = dt.date(2026, 11, 26), dt.date(2026, 11, 27)
SHIPPED = ("600000001", "600000002", "600000005", "600000006", "600000007", "600000008")


class Service:
    def __init__(self, store, make_settings) -> None:
        self.store, self.clock = store, FakeClock(at("2026-11-26T10:00"))
        self.outbound, self.remote_log = FakeOutbound(), FakeRemoteLog()
        self.core = bootstrap(
            make_settings(remote_log_path="importer-{date}.log"),
            store=store,
            inbound=FakeInbound(),
            archive=FakeArchive(),
            mailer=FakeMailer(),
            clock=self.clock,
            outbound=self.outbound,
            remote_log=self.remote_log,
            exports=FakeExportFiles(),
        )

    def day_started(self, when: str) -> None:
        self.clock.set(at(when))
        name = "Letture{}080000000_9.txt".format(self.clock.now().strftime("%Y%m%d"))
        self.core.import_upload(name, io.BytesIO(VALID_SAMPLE.read_bytes()), self.clock.now())
        self.core.start_session(self.clock.now())

    def work(self) -> None:
        self.core.run_session.run_pending(self.clock.wait)

    def session(self, day):
        with self.store.unit_of_work() as uow:
            return uow.session(day)

    def statuses(self, day, status):
        with self.store.unit_of_work() as uow:
            return uow.invoices_with_status(day, status)


@pytest.fixture
def service(real_store, make_settings):
    return Service(real_store, make_settings)


def test_item_1_a_day_closed_while_settling_holds_its_invoices_and_the_next_day_waits_for_it(service):
    def killed_after_the_rename(name, data):
        raise WorkerKilled("the worker dies with the file in place")

    service.day_started("2026-11-26T10:00")
    service.outbound.on_upload = killed_after_the_rename
    with pytest.raises(WorkerKilled):
        service.work()
    service.outbound.on_upload = None
    service.outbound.unreachable = True
    closed = service.core.close_session(service.clock.now())
    assert closed.delivery is Delivery.UNKNOWN
    service.day_started("2026-11-27T08:00")
    service.work()  # the server still silent: the later day waits, then fails like an upload
    later = service.session(NEXT)
    assert later.state is SessionState.FAILED and "2026-11-26" in later.detail
    assert not any("20261127" in name for name in service.outbound.files)
    assert service.statuses(NEXT, InvoiceStatus.VALID) == ()  # held by the 26th meanwhile
    service.outbound.unreachable = False
    service.work()
    assert service.session(DAY).delivery is Delivery.YES and "delivered" in service.session(DAY).detail


def test_item_2_a_day_failing_in_renaming_without_an_answer_is_held_then_settled_by_the_runner(service):
    service.day_started("2026-11-26T10:00")

    def silent_before_the_rename(name):
        service.outbound.on_renaming = None
        service.outbound.refuse_rename_next = 1
        service.outbound.unreachable = True

    service.outbound.on_renaming = silent_before_the_rename
    service.work()
    failed = service.session(DAY)
    assert (failed.state, failed.delivery) == (SessionState.FAILED, Delivery.UNKNOWN)
    service.clock.set(at("2026-11-27T08:00"))
    name = "Letture20261127080000000_9.txt"
    service.core.import_upload(name, io.BytesIO(VALID_SAMPLE.read_bytes()), service.clock.now())
    assert service.statuses(NEXT, InvoiceStatus.VALID) == ()  # held while unknown
    service.outbound.unreachable = False
    service.work()  # the runner sets the temporary file aside: it never arrived
    assert service.session(DAY).delivery is Delivery.NO
    with service.store.unit_of_work() as uow:
        assert uow.refresh_invoice_statuses(NEXT) == 6
    assert service.statuses(NEXT, InvoiceStatus.VALID) == SHIPPED
