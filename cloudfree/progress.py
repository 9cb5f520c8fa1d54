"""Progress lines of the stages that loop over tiles, dates or steps.

:class:`Progress` logs ``<what>: i of N (p %), <elapsed> elapsed, ETA <left>`` to the stage's
logger after the first item, then at least every ``every`` seconds (30 by default, so a
rule's log never goes quiet for longer while it works) and after the last item.  The ETA
is the mean time per item so far times the items left (items done before a resumed run
count as done, not in the rate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
EVERY_SECONDS = 30.0
_latest: list[str] = []  # the last progress line this process logged (the job's summary)


def latest() -> str | None:
    """The last progress line logged in this process, if any."""
    return _latest[-1] if _latest else None


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``12 s``."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class Progress:
    """Counts done items of ``total`` and logs a progress line when one is due."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        *,
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        initial: int = 0,
    ) -> None:
        self.log, self.what, self.total, self.every, self.clock = log, what, total, every, clock
        self.start = clock()
        self.done = self.initial = initial  # items done before (a resumed run): no rate
        self._last: float | None = None

    def line(self) -> str:
        elapsed = self.clock() - self.start
        pct = 100.0 * self.done / self.total if self.total else 100.0
        text = (
            f"{self.what}: {self.done} of {self.total} ({pct:.0f} %), {duration(elapsed)} elapsed"
        )
        if self.initial < self.done < self.total:
            rate = elapsed / (self.done - self.initial)
            text += f", ETA {duration(rate * (self.total - self.done))}"
        return text

    def step(self, n: int = 1) -> None:
        """``n`` more items done; log when the first, the last or ``every`` seconds since
        the previous line."""
        self.done += n
        now = self.clock()
        if self._last is None or self.done >= self.total or now - self._last >= self.every:
            self._last = now
            text = self.line()
            _latest[:] = [text]
            self.log.info("%s", text)


def tracked(
    items: Iterable[T], log: logging.Logger, what: str, total: int, *, every: float = EVERY_SECONDS
) -> Iterator[T]:
    """``items``, with a :class:`Progress` line as each is done (after the loop body)."""
    progress = Progress(log, what, total, every=every)
    for item in items:
        yield item
        progress.step()
