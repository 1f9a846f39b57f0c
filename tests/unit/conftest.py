from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from tests.conftest import SAMPLE_VIEW, at
from tests.fakes import FakeArchive, FakeClock, FakeInbound, FakeMailer, FakeStore
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

    def poll(self, when: str) -> Any:
        self.clock.set(at(when))
        return self.core.ingest_daily_file(self.clock.now())

    def deliver(self) -> Any:
        return self.core.deliver_outbox(self.clock.now())


@pytest.fixture
def world(make_settings: Callable[..., Any]) -> World:
    store = FakeStore(invoice_view=SAMPLE_VIEW)
    inbound = FakeInbound()
    archive = FakeArchive()
    mailer = FakeMailer()
    clock = FakeClock(at("2026-11-26T10:00"))
    core = bootstrap(
        make_settings(), store=store, inbound=inbound, archive=archive, mailer=mailer, clock=clock
    )
    return World(core=core, store=store, inbound=inbound, archive=archive, mailer=mailer, clock=clock)
