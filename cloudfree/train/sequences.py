"""Which date sequences of a tile a training sample may draw.

A sequence is a run of consecutive *eligible* dates (of the chosen date classes) whose
neighbours are at most ``max_gap`` days apart, up to ``seq_len`` long.  Reads the ``dates``,
``doy`` and ``date_class`` datasets of packed tiles (:mod:`cloudfree.packed`); writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cloudfree.packed import Paths, TileRef, decode_strings, open_packed


@dataclass(frozen=True)
class TileDates:
    """Date metadata of a tile, and the starts of the sequences a sampler may draw."""

    doy: np.ndarray  # (T,) int
    days: np.ndarray  # (T,) days since the first date
    date_class: np.ndarray  # (T,) codes of DATE_CLASSES
    eligible: np.ndarray  # indices of the dates sequences are drawn from
    runs: np.ndarray  # for each eligible start: length of the run (<= seq_len)


def eligible_dates(date_class: np.ndarray, codes: list[int] | None) -> np.ndarray:
    """Indices of the dates of the given class codes (all dates for None)."""
    if codes is None:
        return np.arange(len(date_class))
    return np.flatnonzero(np.isin(date_class, codes))


def run_lengths(
    days: np.ndarray, eligible: np.ndarray, seq_len: int, max_gap: int | None
) -> np.ndarray:
    """Per eligible start, how many consecutive eligible dates (gap <= max_gap) follow."""
    n = len(eligible)
    out = np.zeros(n, dtype=np.int64)
    for p in range(n):
        r = 1
        while (
            r < seq_len
            and p + r < n
            and (max_gap is None or days[eligible[p + r]] - days[eligible[p + r - 1]] <= max_gap)
        ):
            r += 1
        out[p] = r
    return out


def read_dates(
    paths: Paths, tiles: list[TileRef]
) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(doy, days since the first date, date class codes) of each tile, by (file, tile)."""
    out = {}
    for i, path in enumerate(paths):
        with open_packed(path) as h5:
            for ref in tiles:
                if ref.file == i:
                    g = h5["tiles"][ref.tile]
                    dates = pd.DatetimeIndex(pd.to_datetime(decode_strings(g["dates"][()])))
                    days = (dates - dates[0]).days.to_numpy().astype(np.int64)
                    cls = g["date_class"][()]
                    out[(i, ref.tile)] = (g["doy"][()], days, cls)
    return out


def class_sources(paths: Paths) -> list[str]:
    """For each file, its region and how its date classes were derived (for messages)."""
    out = []
    for path in paths:
        with open_packed(path) as h5:
            out.append(f"{h5.attrs['region']}: {h5.attrs.get('date_class_source', '?')}")
    return out
