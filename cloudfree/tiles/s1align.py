"""Sentinel-1 acquisitions matched to Sentinel-2 dates by the nearest day.

Sentinel-1 (12-day repeat per satellite, a different orbit) rarely acquires on the day
Sentinel-2 does; a radar layer of an S2 date is the S1 acquisition nearest to it, when one
lies within a tolerance.  :func:`nearest_acquisitions` is that matching, on ISO dates.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

from cloudfree.errors import ConfigError
from cloudfree.names import check_date


def _ordinals(dates: Sequence[str], what: str) -> list[int]:
    """Day ordinals of ISO dates; InputDataError naming ``what`` and the bad date."""
    return [dt.date.fromisoformat(check_date(d, what)).toordinal() for d in dates]


def nearest_acquisitions(
    s2_dates: Sequence[str], s1_dates: Sequence[str], max_days: int
) -> list[int | None]:
    """For each S2 date, the index (into ``s1_dates``) of the nearest S1 date at most
    ``max_days`` days away, None where there is none.

    Of two S1 dates equally far, the earlier is taken; of S1 dates on the same day, the first
    listed.  Neither list needs to be sorted.  A date that is not ``YYYY-MM-DD`` raises
    InputDataError naming it, a negative ``max_days`` ConfigError.
    """
    if isinstance(max_days, bool) or not isinstance(max_days, int) or max_days < 0:
        raise ConfigError(f"S1 matching: max_days must be an integer >= 0 (got {max_days!r})")
    s2 = _ordinals(s2_dates, "S2 dates")
    s1 = _ordinals(s1_dates, "S1 dates")
    order = sorted(range(len(s1)), key=lambda i: (s1[i], i))  # by day, then listed order
    days = [s1[i] for i in order]
    out: list[int | None] = []
    for day in s2:
        k = bisect.bisect_left(days, day)  # days[k] is the first S1 day on or after `day`
        candidates = []
        if k > 0:  # the latest S1 day before `day`, first listed among that day's
            candidates.append(order[bisect.bisect_left(days, days[k - 1])])
        if k < len(days):
            candidates.append(order[k])
        best = min(candidates, key=lambda i: (abs(s1[i] - day), s1[i]), default=None)
        out.append(best if best is not None and abs(s1[best] - day) <= max_days else None)
    return out


def nearest_days(
    s2_dates: Sequence[str], s1_dates: Sequence[str], max_days: int
) -> dict[str, tuple[str, int]]:
    """S2 date -> (its nearest S1 date within ``max_days``, that date minus the S2 date in
    days), as :func:`nearest_acquisitions` picks it; S2 dates without one are left out."""
    found = nearest_acquisitions(s2_dates, s1_dates, max_days)
    out = {}
    for iso, index in zip(s2_dates, found, strict=True):
        if index is not None:
            day = s1_dates[index]
            out[iso] = (day, (dt.date.fromisoformat(day) - dt.date.fromisoformat(iso)).days)
    return out
