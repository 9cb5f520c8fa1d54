"""The merge kernel: contributions, one at a time, into a mosaic window and its side layers.

:class:`Accumulator` works on float arrays with NaN where a contribution has no data;
:class:`NativeAccumulator` gives the same results for the rules that pick per band
(``first``, ``last``, ``max``, ``min``) in the data's own integer dtype and nodata.  Both
merge as :data:`cloudfree.mosaic.rules.RULES` says.  :func:`combine` merges a whole stack and
:func:`to_dtype` turns float results into the output dtype.  Plain numpy, no files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from cloudfree.mosaic.rules import QUALITY_UNKNOWN, rule_of


class Merged(NamedTuple):
    value: np.ndarray  # (C, H, W) float32, NaN where nobody contributes (NativeAccumulator:
    # the mosaic's dtype, nodata there)
    count: np.ndarray  # (H, W) uint16
    source: np.ndarray  # (H, W) uint16, 1-based, 0 = none
    date: np.ndarray  # (H, W) uint32 YYYYMMDD, 0 = none
    quality: np.ndarray  # (H, W) uint8, worst class, 0 = none


class Accumulator:
    """Merges contributions one at a time under a persistence rule.

    Selection rules keep only the current choice (constant memory in the number of
    contributions); stacked rules (``mean``, ``median``) keep the window's stack.
    """

    def __init__(self, rule: str, shape: tuple[int, int, int]) -> None:
        self.name, self.rule = rule, rule_of(rule)
        _, h, w = shape
        self.value = np.full(shape, np.nan, dtype=np.float32)
        self.count = np.zeros((h, w), dtype=np.uint16)
        self.source = np.zeros((h, w), dtype=np.uint16)
        self.date = np.zeros((h, w), dtype=np.uint32)
        self.quality = np.zeros((h, w), dtype=np.uint8)
        self.score = np.full((h, w), -np.inf, dtype=np.float32)
        self.stack: list[tuple[np.ndarray, int, int]] = []

    def add(
        self,
        values: np.ndarray,
        *,
        source: int,
        date: int,
        quality: np.ndarray | None = None,
        score: float = 0.0,
    ) -> None:
        """Add one contribution: (C, H, W) float values, NaN where it has none."""
        finite = np.isfinite(values)
        valid = finite.any(axis=0)
        if not valid.any():
            return
        q = (
            np.full(valid.shape, QUALITY_UNKNOWN, np.uint8)
            if quality is None
            else np.where(quality == 0, QUALITY_UNKNOWN, quality).astype(np.uint8)
        )
        np.maximum(self.quality, np.where(valid, q, 0).astype(np.uint8), out=self.quality)
        first_time = self.count == 0
        self.count += valid
        rule = self.rule
        if rule.statistic is not None:
            self.stack.append((values, source, date))
            return
        if rule.order == "first":
            take = valid & first_time
            fill = finite & np.isnan(self.value)
            self.value[fill] = values[fill]
        elif rule.order == "last":
            take = valid
            self.value[finite] = values[finite]
        elif rule.better is not None and rule.keep is not None:
            b0, cur = values[0], self.value[0]
            take = np.isfinite(b0) & (np.isnan(cur) | rule.better(b0, cur))
            rule.keep(self.value, values, out=self.value)
        elif rule.score is not None:
            pixel = rule.score(values, q, score)
            take = valid & np.isfinite(pixel) & (pixel > self.score)
            take |= valid & first_time & ~np.isfinite(self.score)
            self.score = np.where(take, pixel, self.score)
            self.value = np.where(take[None], values, self.value)
        else:
            raise AssertionError(f"rule {self.name!r} says neither how to pick nor to combine")
        self.source[take] = source
        self.date[take] = date

    def result(self) -> Merged:
        if self.rule.statistic is not None and self.stack:
            stack = np.stack([s for s, _, _ in self.stack])
            value = self.rule.statistic(stack, np.isfinite(stack))
            dist = np.abs(stack[:, 0] - value[0][None])
            dist = np.where(np.isfinite(dist), dist, np.inf)
            idx = np.argmin(dist, axis=0)
            has = np.isfinite(dist).any(axis=0)
            sources = np.array([s for _, s, _ in self.stack], dtype=np.uint16)
            dates = np.array([d for _, _, d in self.stack], dtype=np.uint32)
            self.value = value
            self.source = np.where(has, sources[idx], 0).astype(np.uint16)
            self.date = np.where(has, dates[idx], 0).astype(np.uint32)
        return Merged(self.value, self.count, self.source, self.date, self.quality)


class NativeAccumulator:
    """:class:`Accumulator` for the per-band picking rules in the data's own dtype.

    Contributions are arrays of the mosaic's dtype with ``nodata`` where they have none (no
    float copy, no NaN); results equal the float accumulator's, already in the output dtype.
    """

    def __init__(self, rule: str, shape: tuple[int, int, int], dtype: Any, nodata: Any) -> None:
        self.name, self.rule = rule, rule_of(rule)
        if not self.rule.per_band_pick:
            raise ValueError(f"rule {rule!r} needs the float accumulator")
        self.nodata = np.dtype(dtype).type(nodata)
        _, h, w = shape
        self.value = np.full(shape, self.nodata, dtype=dtype)
        self.count = np.zeros((h, w), dtype=np.uint16)
        self.source = np.zeros((h, w), dtype=np.uint16)
        self.date = np.zeros((h, w), dtype=np.uint32)
        self.quality = np.zeros((h, w), dtype=np.uint8)
        # max with nodata the dtype's minimum (uint16 with 0): nodata loses every comparison,
        # so a plain np.maximum is the NaN-ignoring max and no per-band masks are needed.
        self.plain_max = self.rule.better is np.greater and self.nodata == np.iinfo(dtype).min
        # per band: nothing contributed yet
        self.empty = np.ones((0, 0, 0) if self.plain_max else shape, dtype=bool)

    def add(
        self,
        values: np.ndarray,
        *,
        source: int,
        date: int,
        quality: np.ndarray | None = None,
        score: float = 0.0,
    ) -> None:
        """Add one contribution: (C, H, W) values of the dtype, ``nodata`` where none."""
        if self.plain_max:
            valid = values.max(axis=0) > self.nodata
            finite = None
        else:
            finite = values != self.nodata
            valid = finite.any(axis=0)
        if not valid.any():
            return
        if quality is None:
            q = np.where(valid, QUALITY_UNKNOWN, 0).astype(np.uint8)
        else:
            q = np.where(quality == 0, QUALITY_UNKNOWN, quality).astype(np.uint8, copy=False)
            q[~valid] = 0
        np.maximum(self.quality, q, out=self.quality)
        rule = self.rule
        if finite is None:
            take = values[0] > self.value[0]
            self.count += valid
            np.maximum(self.value, values, out=self.value)
            self.source[take] = source
            self.date[take] = date
            return
        if rule.order == "first":
            take = valid & (self.count == 0)
            put = finite & self.empty
        elif rule.order == "last":
            take, put = valid, finite
        elif rule.better is not None:
            put = finite & (self.empty | rule.better(values, self.value))
            take = put[0]
        else:
            raise AssertionError(f"rule {self.name!r} does not pick per band")
        self.count += valid
        np.copyto(self.value, values, where=put)
        self.empty &= ~finite
        self.source[take] = source
        self.date[take] = date

    def result(self) -> Merged:
        return Merged(self.value, self.count, self.source, self.date, self.quality)


def combine(
    stack: np.ndarray,
    rule: str,
    *,
    dates: Sequence[int] | None = None,
    quality: np.ndarray | None = None,
    scores: Sequence[float] | None = None,
) -> Merged:
    """Merge (N, C, H, W) contributions (NaN = none) in stack order; sources are 1..N.

    ``quality`` (N, H, W) uint8 classes and ``scores`` (N,) base scores feed the side
    layer and the score rules.
    """
    rule_of(rule)
    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim != 4:
        raise ValueError(f"stack must be (N, C, H, W), got shape {stack.shape}")
    acc = Accumulator(rule, stack.shape[1:])
    for i in range(stack.shape[0]):
        acc.add(
            stack[i],
            source=i + 1,
            date=int(dates[i]) if dates is not None else 0,
            quality=None if quality is None else quality[i],
            score=float(scores[i]) if scores is not None else 0.0,
        )
    return acc.result()


def to_dtype(
    merged: np.ndarray, dtype: np.dtype, nodata: float | None, exact: bool = False
) -> np.ndarray:
    """Round and clip to ``dtype``; NaN becomes nodata (0 without one for integers).

    Valid integer values that would round onto the nodata value are moved one step away,
    so a contributed pixel never reads as nodata.  ``exact``: the valid values are already
    values of ``dtype`` other than nodata (picked, not computed), so only NaN is replaced.
    """
    if exact and dtype.kind != "f":
        return np.where(np.isnan(merged), 0 if nodata is None else nodata, merged).astype(dtype)
    valid = np.isfinite(merged)
    if dtype.kind == "f":
        out = merged.astype(dtype)
        if nodata is not None and not math.isnan(nodata):
            out[~valid] = nodata
        return out
    info = np.iinfo(dtype)
    values = np.clip(np.rint(np.where(valid, merged, 0)), info.min, info.max)
    if nodata is not None:
        nd = float(nodata)
        step = 1 if nd < info.max else -1
        values = np.where(valid & (values == nd), nd + step, values)
        values = np.where(valid, values, nd)
    return values.astype(dtype)
