"""Sentinel-1 for the ``folder`` source: a folder of per-date VV/VH GeoTIFFs matched to the
optical dates.

Each optical date gets the S1 acquisition nearest to it within ``s1_max_days``
(:func:`cloudfree.tiles.s1align.nearest_days`), warped onto the region grid
(bilinear, in the file's units: dB files are averaged in dB, a small bias where the grids
differ; linear files are converted after the warp) and written beside the tile's
S2 file as ``<date>_S1.tif`` (dB, NaN where there is none; tags ``S1_DATE`` and ``S1_DAYS``);
a date without an acquisition that close has no S1 file (its cell in the manifest is empty,
the packed ``s1`` NaN).  Files are untrusted: their band count, CRS and values are checked
before anything is cast, each error naming the file and date.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError

from cloudfree.errors import InputDataError
from cloudfree.tiles.grid import Grid, read_on_grid
from cloudfree.tiles.s1align import nearest_days

# dB, linear power (sigma0 or gamma0) or amplitude (its square root)
S1_UNITS = ("db", "linear", "amplitude")
# Backscatter outside this range (dB) is no real surface: a wrong file or wrong units.
PLAUSIBLE_DB = (-60.0, 30.0)


@dataclass(frozen=True)
class S1Match:
    """The S1 file of one optical date and how many days apart it was acquired."""

    path: str
    date: str
    days: int


def match_s1(
    optical_dates: Sequence[str], s1_files: Mapping[str, str], max_days: int
) -> dict[str, S1Match]:
    """Optical date -> its nearest S1 file within ``max_days`` (dates without one left out)."""
    matched = nearest_days(list(optical_dates), sorted(s1_files), max_days)
    return {iso: S1Match(s1_files[day], day, delta) for iso, (day, delta) in matched.items()}


def check_s1_file(path: str, where: str) -> None:
    """A Sentinel-1 file opens, has two bands (VV, VH) of a float or integer type and a CRS."""
    try:
        with rasterio.open(path) as src:
            count, dtypes, crs = src.count, src.dtypes, src.crs
    except RasterioError as exc:
        raise InputDataError(f"{path} ({where}): not a readable raster: {exc}") from None
    if count != 2:
        raise InputDataError(f"{path} ({where}): {count} bands, expected 2 (VV, VH)")
    if crs is None:
        raise InputDataError(f"{path} ({where}): no CRS")
    if not all(np.dtype(d).kind in "fiu" for d in dtypes):
        raise InputDataError(f"{path} ({where}): band types {dtypes} are not numeric")


def s1_on_grid(match: S1Match, grid: Grid, units: str, where: str) -> np.ndarray:
    """(2, H, W) float32 dB of one S1 file on ``grid``; NaN where it has no data."""
    if units not in S1_UNITS:
        raise InputDataError(f"{where}.s1_units: {units!r} is not one of {list(S1_UNITS)}")
    data = read_on_grid(match.path, grid, resampling=Resampling.bilinear, dst_nodata=np.nan)
    return backscatter_db(data, units, f"{match.path} ({where})", f"{where}.s1_units")


def backscatter_db(data: np.ndarray, units: str, what: str, key: str) -> np.ndarray:
    """Backscatter in ``units`` (one of :data:`S1_UNITS`) -> float32 dB, NaN where it is not
    finite (or zero, in linear units); an InputDataError naming ``what`` (the file or asset)
    and ``key`` (the units' config key) when the values cannot be backscatter in those units."""
    data = np.array(data, dtype=np.float64)
    data[~np.isfinite(data)] = np.nan
    if units in ("linear", "amplitude"):
        if np.nanmin(data, initial=0.0) < 0:
            raise InputDataError(f"{what}: negative {units} backscatter: is {key} right?")
        with np.errstate(divide="ignore"):
            data = (10.0 if units == "linear" else 20.0) * np.log10(data)
        data[~np.isfinite(data)] = np.nan
    low, high = np.nanmin(data, initial=np.inf), np.nanmax(data, initial=-np.inf)
    if np.isfinite(low) and (low < PLAUSIBLE_DB[0] or high > PLAUSIBLE_DB[1]):
        raise InputDataError(
            f"{what}: backscatter {low:.1f} to {high:.1f} dB is outside "
            f"{PLAUSIBLE_DB[0]:g} to {PLAUSIBLE_DB[1]:g} dB: is {key} right?"
        )
    return data.astype(np.float32)
