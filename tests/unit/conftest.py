from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from tests.conftest import SAMPLE_VIEW, at
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeExportFiles,
    FakeInbound,
    FakeMailer,
    FakeOutbound,
    FakeRemoteLog,
    FakeStore,
)
from warehouse_core.bootstrap import Core, bootstrap


@dataclass
class World:
    """The core wired to fakes, and the fakes themselves to arrange and assert on."""

    core: Core
    store: FakeStore
    inbound: FakeInbound
    archive: FakeArchive
    mailer: FakeMailer
    clock: FakeClock
    outbound: FakeOutbound
    remote_log: FakeRemoteLog
    exports: FakeExportFiles

    def poll(self, when: str) -> Any:
        self.clock.set(at(when))
        return self.core.ingest_daily_file(self.clock.now())

    def deliver(self) -> Any:
        return self.core.deliver_outbox(self.clock.now())

    def importer_confirms(self, records: Any = None) -> None:
        """The customer's importer: each upload gets its success line in the remote log."""

        def confirm(name: str, data: bytes) -> None:
            count = data.count(b"\n") if records is None else records
            self.remote_log.append(
                "importer-20261126.log", "2026-11-26 10:02:11 INFO {}: {} records read".format(name, count)
            )

        self.outbound.on_upload = confirm

    def work(self) -> int:
        """One round of the session worker."""
        return self.core.run_session.run_pending(self.clock.wait)


def build_world(make_settings: Callable[..., Any], *, probes: Any = None, **overrides: Any) -> World:
    """The core on fresh fakes, its settings taking ``overrides`` (e.g. holidays="it"), with the
    dependency checks' ``probes`` when given."""
    store = FakeStore(invoice_view=SAMPLE_VIEW)
    inbound = FakeInbound()
    archive = FakeArchive()
    mailer = FakeMailer()
    clock = FakeClock(at("2026-11-26T10:00"))
    store.clock = clock  # how long a poll has held the poll lock, on the world's clock
    outbound, remote_log, exports = FakeOutbound(), FakeRemoteLog(), FakeExportFiles()
    overrides.setdefault("remote_log_path", "importer-{date}.log")
    core = bootstrap(
        make_settings(**overrides),
        store=store,
        inbound=inbound,
        archive=archive,
        mailer=mailer,
        clock=clock,
        outbound=outbound,
        remote_log=remote_log,
        exports=exports,
        probes=probes,
    )
    return World(
        core=core,
        store=store,
        inbound=inbound,
        archive=archive,
        mailer=mailer,
        clock=clock,
        outbound=outbound,
        remote_log=remote_log,
        exports=exports,
    )


@pytest.fixture
def make_world(make_settings: Callable[..., Any]) -> Callable[..., World]:
    return lambda **overrides: build_world(make_settings, **overrides)


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()
