"""The tile manifest: the contract between the tile sources and every later stage.

One row per tile and date.  Columns:

- ``region``, ``source``: region name and the tile source it came from;
- ``tile``: tile id (a safe name, :func:`cloudfree.names.check_name`: letters, digits, ``_``
  and ``-``, starting with a letter or digit), ``date``: ISO calendar date (YYYY-MM-DD);
- ``split``: ``train``, ``val`` or ``test`` (decided once, here, by spatial blocks);
- ``image``, ``mask``: paths of the band GeoTIFF and of the cloud-mask GeoTIFF;
- ``crs`` (WKT or EPSG string), ``left``, ``bottom``, ``right``, ``top`` (tile bounds in it),
  ``width``, ``height`` (pixels).

Optional columns (written when a source fills them, empty otherwise):

- ``probability``: float32 cloud-probability GeoTIFF of the tile and date;
- ``s1``: Sentinel-1 GeoTIFF of the same tile for that date (2 float32 bands VV, VH in dB;
  SEN12MS-CR-TS, or synthetic with ``s1``: the S1 acquisition nearest to the date,
  :mod:`cloudfree.tiles.s1align`).  It may be empty on some dates of a tile (no acquisition
  near enough): those dates have no S1;
- ``acquisitions``: what a date of the tile was made of (``folder``: the source image files,
  ``stac``: the item ids), ``;``-joined in merge order when a day had several acquisitions
  over the tile (:mod:`cloudfree.tiles.same_date`);
- ``merge``: how they were merged, one of :data:`MERGE_RULES` (``least_cloudy``: per pixel
  the first clear acquisition, least cloudy on the tile first; ``first``: in file or time
  order), empty where the date is one acquisition.

A manifest written before these columns existed reads with them empty.

A source may leave ``mask`` empty (no cloud masks shipped); the tile stage fills it with the
cloud detector before the manifest is written, so a written manifest always has masks.
:func:`manifest_row` makes a row, :func:`write_manifest` / :func:`read_manifest` write and
read the CSV (``results/tiles/<region>.csv``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from rasterio.crs import CRS

from cloudfree.errors import InputDataError
from cloudfree.io import atomic_path
from cloudfree.names import NAME, check_date, check_name

COLUMNS: tuple[str, ...] = (
    "region", "source", "tile", "date", "split", "image", "mask",
    "crs", "left", "bottom", "right", "top", "width", "height",
)  # fmt: skip
OPTIONAL_COLUMNS: tuple[str, ...] = ("probability", "s1", "acquisitions", "merge")
PATH_COLUMNS: tuple[str, ...] = ("image", "mask", "probability", "s1")
SPLITS = ("train", "val", "test")
MERGE_RULES = ("least_cloudy", "first")  # the values of the merge column (or empty)
TILE_ID = NAME  # the pattern of every name that becomes a path (use it with fullmatch)


class Footprint(Protocol):
    """Where a tile lies: its CRS, bounds (left, bottom, right, top) and size in pixels
    (a :class:`cloudfree.tiles.grid.Grid`)."""

    @property
    def crs(self) -> CRS: ...
    @property
    def bounds(self) -> tuple[float, float, float, float]: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


def manifest_row(
    region: str, source: str, tile: str, iso: str, split: str, where: Footprint, **paths: str
) -> dict[str, Any]:
    """One manifest row for a tile and date lying at ``where``; ``paths`` fills the path
    columns (``image``, ``mask``, ``probability``, ``s1``) and ``acquisitions`` and
    ``merge``, the others stay empty."""
    unknown = sorted(set(paths) - {"image", "mask", *OPTIONAL_COLUMNS})
    if unknown:
        raise ValueError(f"manifest_row: unknown columns {unknown}")
    left, bottom, right, top = where.bounds
    return {
        "region": region,
        "source": source,
        "tile": tile,
        "date": iso,
        "split": split,
        "image": paths.get("image", ""),
        "mask": paths.get("mask", ""),
        **{col: paths.get(col, "") for col in OPTIONAL_COLUMNS},
        "crs": where.crs.to_string(),
        "left": left,
        "bottom": bottom,
        "right": right,
        "top": top,
        "width": where.width,
        "height": where.height,
    }


def _empty(values: pd.Series) -> pd.Series:
    return values.isna() | (values.astype(str).str.strip() == "")


def validate_manifest(
    df: pd.DataFrame, where: str = "manifest", *, require_masks: bool = True
) -> pd.DataFrame:
    """Check columns, ids, dates and splits; return the rows sorted by tile and date.

    Optional columns are added (empty) when absent.  ``require_masks=False`` lets rows
    without a cloud mask through (a source's output before cloud detection).
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"{where}: missing columns {missing}")
    if df.empty:
        raise InputDataError(f"{where}: no tiles")
    df = df.copy()
    for col in OPTIONAL_COLUMNS:
        df[col] = df[col].fillna("").astype(str) if col in df.columns else ""
    if require_masks:
        no_mask = df.loc[_empty(df["mask"])]
        if not no_mask.empty:
            row = no_mask.iloc[0]
            raise InputDataError(
                f"{where}: tile {row.tile}, date {row.date} has no cloud mask "
                f"({len(no_mask)} rows without one)"
            )
    for tile in df["tile"].unique():
        try:
            check_name(str(tile), "tile", where)
        except InputDataError as exc:
            rows = int((df["tile"] == tile).sum())
            raise InputDataError(f"{exc}; it is the tile id of {rows} row(s)") from None
    for date in df["date"].unique():
        try:
            check_date(str(date), where)
        except InputDataError as exc:
            tile = df.loc[df["date"] == date, "tile"].iloc[0]
            raise InputDataError(f"{exc} (tile {tile})") from None
    bad_merge = sorted(set(df["merge"]) - {"", *MERGE_RULES})
    if bad_merge:
        raise InputDataError(
            f"{where}: unknown merge values {bad_merge}; expected {MERGE_RULES} or empty"
        )
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


def normalize_manifest(df: pd.DataFrame, where: str = "manifest") -> pd.DataFrame:
    """The manifest as written: validated, sorted, only the known columns in their order."""
    keep = [*COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in df.columns)]
    return validate_manifest(df[keep], where=where)[[*COLUMNS, *OPTIONAL_COLUMNS]]


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    df = normalize_manifest(df, where=str(path))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(
            path,
            dtype={"tile": str, "date": str, **dict.fromkeys(OPTIONAL_COLUMNS, str)},
            keep_default_na=False,
            na_values={"left": [""], "bottom": [""], "right": [""], "top": [""]},
        )
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read manifest {path}: {exc}") from exc
    return validate_manifest(df, where=str(path))
