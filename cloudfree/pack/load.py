"""A tile's GeoTIFF series read from its manifest rows, for packing.

Reads the images (integer DN, band names from their descriptions: a date whose file orders
its bands otherwise is reordered to the region's), the cloud masks (their values checked in
the file's own dtype before the cast to uint8) and the optional per-date cloud probability
and Sentinel-1 layers a manifest lists; returns a :class:`~cloudfree.packed.TileSeries`
(without date classes) and writes nothing.  Every problem names the file, tile and date.

A cloud probability is given for every date of a tile or for none.  Sentinel-1 may be missing
on some dates (no acquisition near the S2 date): those dates are NaN in the tile's ``s1``, as
are the pixels at an S1 file's nodata; a tile without S1 on any date has no ``s1``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from cloudfree.bands import MASK_NODATA, NODATA, S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.io import read_raster, read_raster_named
from cloudfree.packed import TileSeries, day_of_year
from cloudfree.tiles.grid import bad_mask_values, mask_nodata, mask_values_problem

# Optional columns that may be empty on some dates of a tile (those dates have no such layer).
GAPS_ALLOWED: tuple[str, ...] = ("s1",)


def optional_paths(rows: pd.DataFrame, column: str) -> list[str] | None:
    """The per-date paths of an optional manifest column of one tile's rows, None when all
    are empty.  A column of :data:`GAPS_ALLOWED` may be empty on some dates (``""`` there);
    any other must be set on every date or on none (InputDataError naming tile and date)."""
    if column not in rows.columns:
        return None
    vals = ["" if pd.isna(v) else str(v).strip() for v in rows[column]]
    if not any(vals):
        return None
    if not all(vals) and column not in GAPS_ALLOWED:
        row = rows.iloc[next(i for i, v in enumerate(vals) if not v)]
        raise InputDataError(
            f"manifest: tile {row.tile}, date {row.date} has no {column} file while other "
            f"dates of the tile have one; give one for every date or for none"
        )
    return vals


def image_bands(path: str | os.PathLike[str], where: str = "") -> tuple[str, ...]:
    """Band names of a GeoTIFF from its band descriptions.

    A 13-band file without descriptions is taken as :data:`S2_L1C_BANDS`; any other file must
    name every band (``InputDataError`` naming the file otherwise).
    """
    at = f" ({where})" if where else ""
    try:
        with rasterio.open(path) as src:
            count, descriptions = src.count, src.descriptions
    except (RasterioError, OSError) as exc:
        raise InputDataError(f"cannot read raster {path}{at}: {exc}") from exc
    return band_names(path, count, descriptions, where)


def band_names(
    path: str | os.PathLike[str], count: int, descriptions: Sequence[str | None], where: str = ""
) -> tuple[str, ...]:
    """Band names from a raster's ``descriptions`` (see :func:`image_bands`)."""
    at = f" ({where})" if where else ""
    names = tuple(str(d).strip() if d else "" for d in descriptions)
    if all(names):
        if len(set(names)) != len(names):
            raise InputDataError(f"{path}{at}: band descriptions {names} are not unique")
        return names
    if not any(names) and count == len(S2_L1C_BANDS):
        return S2_L1C_BANDS
    raise InputDataError(
        f"{path}{at}: {count} bands but band descriptions {names}; a file that is not the "
        f"{len(S2_L1C_BANDS)} Sentinel-2 L1C bands must name every band in its descriptions"
    )


def in_region_order(
    path: str | os.PathLike[str], names: Sequence[str], bands: Sequence[str], where: str
) -> list[int] | None:
    """The 0-based positions of the region's ``bands`` among a file's band ``names`` (None
    when they are the same, in the same order); a region band the file lacks is an error."""
    if tuple(names) == tuple(bands):
        return None
    missing = [b for b in bands if b not in names]
    if missing:
        raise InputDataError(
            f"{path} ({where}): {len(names)} bands, expected {len(bands)} "
            f"({', '.join(bands)}): {', '.join(missing)} missing (the file has "
            f"{', '.join(names)})"
        )
    return [list(names).index(b) for b in bands]


def checked_mask(
    path: str | os.PathLike[str], values: np.ndarray, nodata: float | None, where: str
) -> np.ndarray:
    """A cloud mask as uint8 classes, its values checked in the file's own dtype first (an
    int16 -1 must not become 0, clear); the file's nodata becomes :data:`MASK_NODATA`."""
    if values.dtype.kind not in "uifb":
        raise InputDataError(f"{path} ({where}): cloud mask of {values.dtype} pixels")
    bad = bad_mask_values(values, nodata)
    if bad:
        raise InputDataError(f"{path} ({where}): {mask_values_problem(values.dtype, bad, nodata)}")
    if values.dtype == np.uint8 and mask_nodata(nodata) == MASK_NODATA:
        return values
    out = np.where(values == mask_nodata(nodata), MASK_NODATA, values)
    if nodata is not None and np.isnan(nodata):
        out[np.isnan(values)] = MASK_NODATA
    return out.astype(np.uint8)


def load_series(rows: pd.DataFrame, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a tile's images and masks listed in manifest rows (sorted by date)."""
    images, masks = [], []
    first_profile = None
    for row in rows.itertuples():
        img, prof, descriptions = read_raster_named(row.image)
        msk, mprof = read_raster(row.mask)
        where = f"tile {row.tile}, date {row.date}"
        names = band_names(row.image, img.shape[0], descriptions, where)
        order = in_region_order(row.image, names, bands, where)
        if order is not None:
            img = img[order]
        if img.dtype.kind not in "ui":
            raise InputDataError(f"{row.image} ({where}): {img.dtype} pixels, expected integers")
        if msk.shape[1:] != img.shape[1:] or mprof["transform"] != prof["transform"]:
            raise InputDataError(f"{row.mask} ({where}): cloud mask is not on the image grid")
        if first_profile is None:
            first_profile = prof
        elif prof["transform"] != first_profile["transform"] or prof["crs"] != first_profile["crs"]:
            raise InputDataError(f"{row.image} ({where}): grid differs from the tile's first date")
        elif img.dtype != images[0].dtype:
            raise InputDataError(
                f"{row.image} ({where}): {img.dtype} pixels, the tile's first date has "
                f"{images[0].dtype}"
            )
        images.append(img)
        masks.append(checked_mask(row.mask, msk[0], mprof.get("nodata"), where))
    return np.stack(images), np.stack(masks)


def _load_extra(
    rows: pd.DataFrame, paths: list[str], kind: str, shape: tuple[int, ...], *, nan_nodata: bool
) -> np.ndarray:
    """(T, *shape) float32 of one optional layer, one file per date; a date without a file
    (``""``) is all NaN, and so, with ``nan_nodata``, are the pixels at a file's nodata."""
    out = np.full((len(paths), *shape), np.nan, dtype=np.float32)
    for t, (row, path) in enumerate(zip(rows.itertuples(), paths, strict=True)):
        if not path:
            continue
        arr, prof = read_raster(path)
        if arr.shape != shape:
            raise InputDataError(
                f"{path} (tile {row.tile}, date {row.date}): {kind} of shape {arr.shape}, "
                f"expected {shape}"
            )
        out[t] = arr
        nodata = prof.get("nodata")
        if nan_nodata and nodata is not None and not np.isnan(nodata):
            out[t][arr == nodata] = np.nan
    return out


def load_tile(name: str, rows: pd.DataFrame, bands: Sequence[str]) -> TileSeries:
    """One tile's series, optional layers and geo reference from its manifest rows."""
    s2, mask = load_series(rows, bands)
    dates = rows["date"].astype(str).tolist()
    _, prof = read_raster(rows.iloc[0].image)
    sources = {"image": rows["image"].astype(str).tolist()}
    sources["mask"] = rows["mask"].astype(str).tolist()
    hh, ww = s2.shape[2:]
    prob = s1 = None
    prob_paths = optional_paths(rows, "probability")
    if prob_paths:
        sources["probability"] = prob_paths
        prob = _load_extra(rows, prob_paths, "cloud probability", (1, hh, ww), nan_nodata=False)[
            :, 0
        ]
    s1_paths = optional_paths(rows, "s1")
    if s1_paths:
        sources["s1"] = s1_paths
        s1 = _load_extra(rows, s1_paths, "Sentinel-1", (2, hh, ww), nan_nodata=True)
    nodata = prof.get("nodata")
    return TileSeries(
        tile=name,
        split=str(rows["split"].iloc[0]),
        s2=s2,
        mask=mask,
        dates=dates,
        doy=day_of_year(dates),
        crs=CRS.from_user_input(prof["crs"]),
        transform=prof["transform"],
        probability=prob,
        s1=s1,
        sources=sources,
        nodata=NODATA if nodata is None else int(nodata),
    )
