"""Progress lines: the first item, then at least every 30 s, the last; an ETA in between."""

import itertools
import logging

from cloudfree.progress import Progress, duration, tracked


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_first_every_30_s_and_last_with_an_eta(caplog):
    clock = Clock()
    log = logging.getLogger("cloudfree.test")
    progress = Progress(log, "inference", 10, clock=clock)
    with caplog.at_level(logging.INFO, logger="cloudfree.test"):
        for _ in range(10):
            clock.now += 12.0
            progress.step()
    lines = [r.getMessage() for r in caplog.records]
    # after items 1 (12 s), 4 (48 s: 36 s since), 7 (84 s), and the last (120 s)
    assert lines == [
        "inference: 1 of 10 (10 %), 12 s elapsed, ETA 1 min 48 s",
        "inference: 4 of 10 (40 %), 48 s elapsed, ETA 1 min 12 s",
        "inference: 7 of 10 (70 %), 1 min 24 s elapsed, ETA 36 s",
        "inference: 10 of 10 (100 %), 2 min 00 s elapsed",
    ]


def test_no_line_goes_longer_than_every_seconds_without_a_successor(caplog):
    clock = Clock()
    log = logging.getLogger("cloudfree.test")
    with caplog.at_level(logging.INFO, logger="cloudfree.test"):
        progress = Progress(log, "tiles", 100, clock=clock)
        for _ in range(100):
            clock.now += 7.0
            progress.step()
    times = [int(r.getMessage().split(" of ")[0].split()[-1]) * 7 for r in caplog.records]
    assert times[0] == 7 and times[-1] == 700
    assert max(b - a for a, b in itertools.pairwise(times)) <= 30 + 7


def test_durations_read_as_a_person_would():
    assert duration(5.4) == "5 s"
    assert duration(185) == "3 min 05 s"
    assert duration(3 * 3600 + 120) == "3 h 02 min"


def test_a_resumed_run_counts_its_rate_from_the_resumed_items(caplog):
    clock = Clock()
    log = logging.getLogger("cloudfree.test")
    progress = Progress(log, "training", 300, clock=clock, initial=200)
    with caplog.at_level(logging.INFO, logger="cloudfree.test"):
        clock.now += 2.0
        progress.step()
    assert caplog.records[0].getMessage() == (
        "training: 201 of 300 (67 %), 2 s elapsed, ETA 3 min 18 s"
    )


def test_tracked_yields_every_item_and_reports_the_last(caplog):
    log = logging.getLogger("cloudfree.test")
    with caplog.at_level(logging.INFO, logger="cloudfree.test"):
        assert list(tracked(range(3), log, "dates", 3)) == [0, 1, 2]
    assert caplog.records[-1].getMessage().startswith("dates: 3 of 3 (100 %)")
