"""Temporal composites: per pixel the best available observation of a period.

As FORCE's level-3 best-available-pixel composites, every (tile, date) of the period gets a
score and each output pixel takes the contribution with the best one: observed pixels
(quality class ``observed``) always beat reconstructed ones; between those, the base score
is half the clear share of the source tile and date, half the closeness of the date to the
target date (the middle of the period unless configured).  The side layers say which tile
and date each pixel came from, how many contributions it had and the worst quality among
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date as Date
from pathlib import Path

from cloudfree.errors import ConfigError
from cloudfree.mosaic.read import Contribution, cloud_fraction, date_code, quality_of
from cloudfree.mosaic.rules import rule_of
from cloudfree.mosaic.write import Template, write_mosaic
from cloudfree.progress import Progress
from cloudfree.tiles.grid import Grid


def _parse(value: str | None, key: str) -> Date | None:
    if value is None:
        return None
    try:
        return Date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(
            f"mosaic.composite.{key}: {value!r} is not an ISO date (YYYY-MM-DD)"
        ) from None


def composite_scores(
    dates: Sequence[str],
    clear: Mapping[tuple[str, str], float],
    *,
    start: str | None,
    end: str | None,
    target: str | None,
) -> tuple[dict[tuple[str, str], float], dict[str, str]]:
    """Base scores in [0, 1] of the (tile, date) pairs of ``clear`` (clear share) inside
    the period [``start``, ``end``] (None: the first, the last date), and the period's tags
    (PERIOD_START, PERIOD_END, TARGET_DATE: ``target``, None: the middle of the period)."""
    d0, d1, dt = _parse(start, "start"), _parse(end, "end"), _parse(target, "target")
    known = sorted(Date.fromisoformat(d) for d in dates)
    lo = d0 or (known[0] if known else None)
    hi = d1 or (known[-1] if known else None)
    if lo and hi and lo > hi:
        raise ConfigError(f"mosaic.composite: start {lo} is after end {hi}")
    if lo is None or hi is None:
        return {}, {}
    mid = dt or lo + (hi - lo) / 2
    half = max(1, (hi - mid).days, (mid - lo).days)
    scores = {}
    for (tile, d), share in clear.items():
        day = Date.fromisoformat(d)
        if lo <= day <= hi:
            closeness = max(0.0, 1.0 - abs((day - mid).days) / half)
            scores[(tile, d)] = 0.5 * share + 0.5 * closeness
    tags = {"PERIOD_START": lo.isoformat(), "PERIOD_END": hi.isoformat(),
            "TARGET_DATE": mid.isoformat(), "DATE": mid.isoformat()}  # fmt: skip
    return scores, tags


def composite_region(
    by_date: Mapping[str, Sequence[Path]],
    dest: Path,
    *,
    grid: Grid,
    sources: Sequence[str],
    start: str | None,
    end: str | None,
    target: str | None,
    rule: str,
    resampling: str,
    compress: str,
    level: int | None,
    fmt: str,
    block: int,
    template: Template | None = None,
    num_threads: int | str = 1,
    progress: Progress | None = None,
) -> Path:
    """Write the composite of ``{date: [<tile>/<date>.tif]}`` over [start, end] to ``dest``.

    Contributions are ordered by date, then tile; ``rule`` picks per pixel (the score rules
    rank them by :func:`composite_scores`).  The writing settings are those of
    :func:`cloudfree.mosaic.write.write_mosaic` (``progress``: stepped per window).  A period
    without any date gives an all-nodata composite with count 0.
    """
    rule_of(rule, "mosaic.composite.rule")
    clear = {}
    quality = {}
    for d, paths in by_date.items():
        for path in paths:
            q = quality_of(Path(path), d)
            quality[(path.parent.name, d)] = (Path(path), q)
            clear[(path.parent.name, d)] = 1.0 - cloud_fraction(q) if q else 1.0
    scores, tags = composite_scores(list(by_date), clear, start=start, end=end, target=target)
    contribs = [
        Contribution(path, sources.index(tile) + 1, date_code(d), q, scores[(tile, d)])
        for (tile, d), (path, q) in sorted(quality.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        if (tile, d) in scores
    ]
    tpl = replace(template or Template(), tags={**(template or Template()).tags, **tags})
    return write_mosaic(
        contribs, Path(dest), rule=rule, grid=grid, sources=sources, resampling=resampling,
        template=tpl, tags={"PRODUCT": "composite"}, compress=compress, block=block,
        level=level, num_threads=num_threads, fmt=fmt, progress=progress,
    )  # fmt: skip
