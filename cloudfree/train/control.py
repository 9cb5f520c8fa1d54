"""Run control: stop signals, interruption and a non-finite loss."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from cloudfree.errors import CloudfreeError


class TrainingInterrupted(CloudfreeError):
    """A signal stopped training after a checkpoint; running again resumes from it."""


class NonFiniteLossError(CloudfreeError, FloatingPointError):
    """The training loss became NaN or infinite (names the step and the kept checkpoint)."""


class StopRequest:
    """Context manager turning SIGTERM, SIGUSR1 and SIGINT into a flag checked every step.

    Handlers are installed only in the main thread and restored on exit.
    """

    SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
