"""Date classes of the packed tiles (clear, impaired, unusable: ``DATE_CLASSES``).

Read from the date-selection table of rule cloud_stats (``results/cloudstats/{region}_dates.csv``,
columns tile, date, class) when the workflow has one; without it, derived from each tile's
cloud masks by :func:`classes_from_clear_share` (``pack.clear_min`` / ``pack.usable_min``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.packed import DATE_CLASSES, TileSeries

ClassLookup = dict[tuple[str, str], int]


def read_date_stats(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The per tile and date table of rule cloud_stats (columns tile, date, class, ...)."""
    try:
        df = pd.read_csv(path, dtype={"tile": str, "date": str, "class": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read cloud statistics {path}: {exc}") from exc
    missing = [c for c in ("tile", "date", "class") if c not in df.columns]
    if missing:
        raise InputDataError(f"{path}: missing columns {missing}")
    bad = sorted(set(df["class"]) - set(DATE_CLASSES))
    if bad:
        raise InputDataError(f"{path}: unknown date classes {bad}; expected {list(DATE_CLASSES)}")
    df.attrs["path"] = str(path)
    return df


def class_lookup(stats: pd.DataFrame) -> ClassLookup:
    """(tile, date) -> class code of a cloud statistics table."""
    return {
        (str(t), str(d)): DATE_CLASSES[str(c)]
        for t, d, c in zip(stats["tile"], stats["date"], stats["class"], strict=True)
    }


def classes_from_table(lookup: ClassLookup, tile: TileSeries, where: str) -> np.ndarray:
    """(T,) class codes of a tile's dates from a table; a missing date is named."""
    out = []
    for date in tile.dates:
        if (tile.tile, date) not in lookup:
            raise InputDataError(f"{where}: no row for tile {tile.tile}, date {date}")
        out.append(lookup[(tile.tile, date)])
    return np.asarray(out, dtype=np.uint8)


def classes_from_clear_share(
    tile: TileSeries, *, clear_min: float, usable_min: float
) -> np.ndarray:
    """(T,) class codes from the share of a date's valid pixels that are clear.

    ``clear``: at least ``clear_min`` of the valid pixels are clear; ``unusable``: no valid
    pixel or less than ``usable_min`` of them clear; ``impaired``: the rest.
    """
    valid = tile.valid.sum(axis=(1, 2))
    clear = tile.clear.sum(axis=(1, 2))
    frac = np.where(valid > 0, clear / np.maximum(valid, 1), 0.0)
    out = np.full(len(frac), DATE_CLASSES["impaired"], dtype=np.uint8)
    out[frac >= clear_min] = DATE_CLASSES["clear"]
    out[(valid == 0) | (frac < usable_min)] = DATE_CLASSES["unusable"]
    return out


def clear_share_rule(clear_min: float, usable_min: float) -> str:
    """How :func:`classes_from_clear_share` decides, for the file's ``date_class_source``."""
    return (
        f"cloud masks: clear if >= {clear_min} of the valid pixels are clear, "
        f"unusable if < {usable_min}"
    )


def without_holdout(manifest: pd.DataFrame, period: Mapping[str, str] | None) -> pd.DataFrame:
    """The manifest without the dates of ``evaluation.holdout_period`` of every tile that is
    not a test tile: no training or validation tile keeps them, so the test tiles' dates in
    the period are unseen (the inductive set of a real source)."""
    if not period:
        return manifest
    dates = manifest["date"].astype(str)
    inside = (dates >= str(period["start"])) & (dates <= str(period["end"]))
    return manifest[~(inside & (manifest["split"] != "test"))]
