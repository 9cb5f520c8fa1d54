"""The tile manifest: the contract between the tile sources and every later stage.

One row per tile and date.  Columns:

- ``region``, ``source``: region name and the tile source it came from;
- ``tile``: tile id (``[A-Za-z0-9_-]+``), ``date``: ISO date (YYYY-MM-DD);
- ``split``: ``train``, ``val`` or ``test`` (decided once, here, by spatial blocks);
- ``image``, ``mask``: paths of the band GeoTIFF and of the cloud-mask GeoTIFF;
- ``crs`` (WKT or EPSG string), ``left``, ``bottom``, ``right``, ``top`` (tile bounds in it),
  ``width``, ``height`` (pixels).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from .errors import InputDataError
from .io import atomic_path

COLUMNS: tuple[str, ...] = (
    "region", "source", "tile", "date", "split", "image", "mask",
    "crs", "left", "bottom", "right", "top", "width", "height",
)  # fmt: skip
SPLITS = ("train", "val", "test")
TILE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def validate_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    """Check columns, ids, dates and splits; return the rows sorted by tile and date."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"{where}: missing columns {missing}")
    if df.empty:
        raise InputDataError(f"{where}: no tiles")
    for tile in df["tile"].unique():
        if not TILE_ID.match(str(tile)):
            raise InputDataError(f"{where}: tile id {tile!r} must match {TILE_ID.pattern}")
    bad_dates = df.loc[~df["date"].astype(str).str.match(ISO_DATE), "date"]
    if not bad_dates.empty:
        raise InputDataError(f"{where}: dates not in YYYY-MM-DD form: {list(bad_dates[:3])}")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise InputDataError(f"{where}: unknown split values {bad_split}; expected {SPLITS}")
    dup = df.duplicated(["tile", "date"])
    if dup.any():
        row = df[dup].iloc[0]
        raise InputDataError(f"{where}: tile {row.tile} has date {row.date} twice")
    splits_per_tile = df.groupby("tile")["split"].nunique()
    if (splits_per_tile > 1).any():
        tile = splits_per_tile[splits_per_tile > 1].index[0]
        raise InputDataError(f"{where}: tile {tile} is in more than one split")
    return df.sort_values(["tile", "date"]).reset_index(drop=True)


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    df = validate_manifest(df[list(COLUMNS)], where=str(path))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={"tile": str, "date": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read manifest {path}: {exc}") from exc
    return validate_manifest(df, where=str(path))
