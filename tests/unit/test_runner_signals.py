"""What SIGTERM and Ctrl-C do while a service starts (warehouse_runner.signals): real signals, sent
to this process; every handler is put back afterwards."""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Dict, Iterator

import pytest

from warehouse_runner.signals import STOP_SIGNALS, Interrupted, interruptible, stopped_line


@pytest.fixture
def handlers_put_back() -> Iterator[Dict[int, Any]]:
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield before
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def wait_for_handlers() -> None:
    for _ in range(20):  # a signal's Python handler runs between two bytecodes of the main thread
        time.sleep(0.01)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stop_signal_while_starting_raises_interrupted_once_and_a_second_is_ignored(handlers_put_back, signum):
    with interruptible():
        with pytest.raises(Interrupted) as caught:
            os.kill(os.getpid(), signum)
            wait_for_handlers()
        os.kill(os.getpid(), signal.SIGTERM)  # pressed again while stopping: nothing happens
        os.kill(os.getpid(), signal.SIGINT)
        wait_for_handlers()
    assert caught.value.signum == signum
    assert stopped_line("warehouse-runner", caught.value) == "warehouse-runner: stopped by {} during start-up".format(
        signal.Signals(signum).name
    )
    os.kill(os.getpid(), signal.SIGINT)  # still ignored as the process exits: no KeyboardInterrupt
    wait_for_handlers()


def test_without_a_signal_the_previous_handlers_are_put_back(handlers_put_back):
    with interruptible():
        pass
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == handlers_put_back


def test_handlers_installed_inside_stay(handlers_put_back):
    def own(signum: int, frame: Any) -> None:
        pass

    with interruptible():
        signal.signal(signal.SIGTERM, own)
    assert signal.getsignal(signal.SIGTERM) is own
    assert signal.getsignal(signal.SIGINT) == handlers_put_back[signal.SIGINT]
