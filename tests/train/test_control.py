"""Tests of cloudfree.train.control: stop signals become a flag, handlers come back."""

from __future__ import annotations

import os
import signal

from cloudfree.train.control import StopRequest


def test_stop_request_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    with StopRequest() as stop:
        assert not stop.requested and stop.name == "none"
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.name == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before
