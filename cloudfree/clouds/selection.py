"""Which dates of a tile are clear (usable as targets), impaired, or unusable.

The default rule set is U-TILISE's (Stucker et al. 2023, github.com/prs-eth/U-TILISE:
``detect_impaired_frames`` in ``lib/datasets/dataset_tools.py``, as run on SEN12MS-CR-TS by
``toolbox/SEN12MSCRTS_detect_cloudy_frames.py`` with ``increased_filter_strength=True``).
A date is impaired when

- its binary mask covers at least 40 % of the pixels, or
- more than 1 % of its pixels have a cloud probability above 1 % and the mask covers more
  than 10 %, or
- more than 4 % of its pixels have a cloud probability above 1 % and the mask covers more
  than 3.5 %;

without a probability map, when the mask covers at least 5 %.  U-TILISE calls a date
unavailable when all its pixels are nodata; here such a date, or one whose coverage reaches
``max_coverage``, is ``unusable``.  Coverages are fractions of the valid (not nodata) pixels;
cloud shadow counts as cover when ``count_shadow`` is set (U-TILISE's s2cloudless masks have
no shadow class).  The thresholds are the ``clouds.selection`` config section (the schema holds
U-TILISE's as its defaults).

Reads and writes the date-selection table ``results/cloudstats/{region}_dates.csv``
(:func:`selection_table`, :func:`read_selection`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.packed import DATE_CLASSES

CLASSES: tuple[str, ...] = tuple(DATE_CLASSES)  # clear, impaired, unusable
COLUMNS: tuple[str, ...] = ("tile", "date", "cloud", "shadow", "valid", "clear_fraction", "class")


def classify_dates(table: pd.DataFrame, settings: Mapping[str, Any]) -> pd.Series:
    """Class of every row of a coverage table (columns ``cloud_fraction``, ``shadow_fraction``,
    ``valid_fraction`` and optionally ``prob_fraction``: share of valid pixels whose cloud
    probability exceeds ``prob_threshold``, NaN where no probability map exists) under the
    resolved ``clouds.selection`` ``settings``."""
    cover = table["cloud_fraction"].fillna(1.0).to_numpy(dtype=float)
    if settings["count_shadow"]:
        cover = cover + table["shadow_fraction"].fillna(0.0).to_numpy(dtype=float)
    valid = table["valid_fraction"].to_numpy(dtype=float)
    prob = (
        table["prob_fraction"].to_numpy(dtype=float)
        if "prob_fraction" in table.columns
        else np.full(len(table), np.nan)
    )
    has_prob = ~np.isnan(prob)
    if settings["rule"] == "u-tilise":
        impaired = cover >= settings["mask_max"]
        with_prob = np.zeros(len(table), dtype=bool)
        for min_prob, min_cover in settings["prob_rules"]:
            with_prob |= (np.nan_to_num(prob) > min_prob) & (cover > min_cover)
        impaired |= np.where(has_prob, with_prob, cover >= settings["mask_only_max"])
    else:  # plain threshold on the mask coverage
        impaired = cover >= settings["mask_only_max"]
    unusable = (valid <= settings["min_valid"]) | (cover >= settings["max_coverage"])
    # the class names themselves, not a new string per row (a region has many rows)
    codes = np.where(unusable, 2, np.where(impaired, 1, 0))
    classes = np.array(["clear", "impaired", "unusable"], dtype=object)[codes]
    return pd.Series(classes, index=table.index, name="class")


def selection_table(table: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """The date-selection table: :data:`COLUMNS` first, then split and probability cover."""
    out = pd.DataFrame(
        {
            "tile": table["tile"].astype(str),
            "date": table["date"].astype(str),
            "cloud": table["cloud_fraction"],
            "shadow": table["shadow_fraction"],
            "valid": table["valid_fraction"],
            "clear_fraction": table["clear_fraction"],
            "class": classify_dates(table, settings),
        }
    )
    for extra in ("split", "prob_fraction", "region"):
        if extra in table.columns:
            out[extra] = table[extra].to_numpy()
    return out.sort_values(["tile", "date"]).reset_index(drop=True)


def read_selection(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``results/cloudstats/{region}_dates.csv``; checks columns and classes."""
    try:
        df = pd.read_csv(path, dtype={"tile": str, "date": str, "class": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read date selection {path}: {exc}") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"date selection {path}: missing columns {missing}")
    bad = sorted(set(df["class"]) - set(CLASSES))
    if bad:
        raise InputDataError(f"date selection {path}: unknown classes {bad}; expected {CLASSES}")
    return df


def dates_of(selection: pd.DataFrame, tile: str, cls: str = "clear") -> list[str]:
    """The dates of one tile in one class, in order."""
    rows = selection[(selection["tile"] == str(tile)) & (selection["class"] == cls)]
    return sorted(rows["date"].astype(str))
