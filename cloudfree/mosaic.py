"""Merge a region's reconstructed per-tile GeoTIFFs into one Cloud-Optimized GeoTIFF per date.

``combine`` is the array kernel; ``mosaic_date`` warps the tiles of one date onto the union
grid and writes the merged raster plus a persistence-count raster (how many tiles gave a
valid value per pixel); ``mosaic_region`` does that for every date of a directory tree.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_bounds

from .errors import ConfigError, InputDataError
from .io import atomic_path, geotiff_profile, write_raster

RULES: tuple[str, ...] = ("first", "last", "mean", "median", "max", "min")
RESAMPLING: dict[str, Resampling] = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "cubic_spline": Resampling.cubic_spline,
    "lanczos": Resampling.lanczos,
    "average": Resampling.average,
}
DATE_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.tif$")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown mosaic rule {rule!r}; known rules: {', '.join(RULES)}")


def _resampling(name: str) -> Resampling:
    try:
        return RESAMPLING[name]
    except KeyError:
        raise ConfigError(f"unknown resampling {name!r}; known: {', '.join(RESAMPLING)}") from None


def combine(stack: np.ndarray, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Merge (N, C, H, W) tiles (NaN = no contribution) into (C, H, W) and a (H, W) count.

    Rules ignore NaN per band; ``first``/``last`` take the first/last contributing tile in
    stack order.  The count is the number of tiles with a finite value in any band.
    Pixels nobody contributes to are NaN.
    """
    _check_rule(rule)
    stack = np.asarray(stack)
    if stack.ndim != 4:
        raise ValueError(f"stack must be (N, C, H, W), got shape {stack.shape}")
    stack = stack.astype(np.result_type(stack.dtype, np.float32), copy=False)
    finite = np.isfinite(stack)
    count = finite.any(axis=1).sum(axis=0).astype(np.uint16)
    if stack.shape[0] == 0:
        return np.full(stack.shape[1:], np.nan, stack.dtype), count
    anywhere = finite.any(axis=0)
    if rule in ("first", "last"):
        order = finite if rule == "first" else finite[::-1]
        index = np.argmax(order, axis=0)
        if rule == "last":
            index = stack.shape[0] - 1 - index
        merged = np.take_along_axis(stack, index[None], axis=0)[0]
    elif rule == "mean":
        n = finite.sum(axis=0)
        total = np.where(finite, stack, 0).sum(axis=0, dtype=np.float64)
        merged = (total / np.maximum(n, 1)).astype(stack.dtype)
    elif rule == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            merged = np.nanmedian(stack, axis=0)
    elif rule == "max":
        merged = np.fmax.reduce(stack, axis=0)
    else:
        merged = np.fmin.reduce(stack, axis=0)
    merged = np.where(anywhere, merged, np.nan).astype(stack.dtype, copy=False)
    return merged, count


def _to_dtype(merged: np.ndarray, dtype: np.dtype, nodata: float | None) -> np.ndarray:
    """Round and clip to ``dtype``; NaN becomes nodata (0 without one for integers).

    Valid integer values that would round onto the nodata value are moved one step away,
    so a contributed pixel never reads as nodata.
    """
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


def _target_grid(srcs: list[Any], crs: CRS, resolution: float | None) -> tuple[Affine, int, int]:
    lefts, bottoms, rights, tops = [], [], [], []
    for src in srcs:
        b = src.bounds
        if CRS.from_user_input(src.crs) == crs:
            lb = (b.left, b.bottom, b.right, b.top)
        else:
            lb = transform_bounds(src.crs, crs, *b, densify_pts=21)
        lefts.append(lb[0])
        bottoms.append(lb[1])
        rights.append(lb[2])
        tops.append(lb[3])
    left, bottom, right, top = min(lefts), min(bottoms), max(rights), max(tops)
    if resolution is not None:
        xres = yres = float(resolution)
    elif CRS.from_user_input(srcs[0].crs) == crs:
        xres, yres = (abs(r) for r in srcs[0].res)
    else:
        first = srcs[0]
        transform, _, _ = calculate_default_transform(
            first.crs, crs, first.width, first.height, *first.bounds
        )
        xres, yres = abs(transform.a), abs(transform.e)
    if not (xres > 0 and yres > 0):
        raise ConfigError(f"mosaic resolution must be positive, got {resolution!r}")
    width = max(1, math.ceil((right - left) / xres - 1e-6))
    height = max(1, math.ceil((top - bottom) / yres - 1e-6))
    return Affine(xres, 0.0, left, 0.0, -yres, top), width, height


def mosaic_date(
    paths: list[Path],
    dest: Path,
    count_dest: Path,
    *,
    rule: str,
    crs: str | None = None,
    resolution: float | None = None,
    resampling: str = "bilinear",
) -> None:
    """Mosaic one date's tiles (in ``paths`` order) into ``dest`` and ``count_dest`` (COGs).

    The target grid is the union of the tiles' bounds in ``crs`` (default: the first
    tile's) at ``resolution`` (default: the first tile's pixel size, converted to ``crs``
    when that differs).  Each tile is warped onto it with ``resampling`` (its own nodata is
    honoured), the stack is merged by :func:`combine` with ``rule``, and the result is
    written in the inputs' dtype (rounded, clipped), nodata, band descriptions and dataset
    tags (of the first tile).  ``count_dest`` is uint16: valid contributions per pixel.
    """
    _check_rule(rule)
    method = _resampling(resampling)
    if not paths:
        raise InputDataError(f"no tiles to mosaic into {dest}")
    srcs: list[Any] = []
    try:
        for path in paths:
            try:
                srcs.append(rasterio.open(path))
            except RasterioIOError as exc:
                raise InputDataError(f"cannot read raster {path}: {exc}") from exc
        first = srcs[0]
        for path, src in zip(paths, srcs, strict=True):
            if src.count != first.count or src.dtypes[0] != first.dtypes[0]:
                raise InputDataError(
                    f"{path}: {src.count} bands of {src.dtypes[0]}, but {paths[0]} has "
                    f"{first.count} of {first.dtypes[0]}"
                )
            if src.crs is None:
                raise InputDataError(f"{path}: no CRS")
        dates = {p: s.tags().get("DATE") for p, s in zip(paths, srcs, strict=True)}
        if len({d for d in dates.values() if d is not None}) > 1:
            raise InputDataError(f"tiles of different DATE tags in one mosaic: {dates}")
        try:
            dst_crs = (
                CRS.from_user_input(crs) if crs is not None else CRS.from_user_input(first.crs)
            )
        except Exception as exc:
            raise ConfigError(f"invalid mosaic crs {crs!r}: {exc}") from exc
        transform, width, height = _target_grid(srcs, dst_crs, resolution)
        stack = np.full((len(srcs), first.count, height, width), np.nan, dtype=np.float32)
        for i, src in enumerate(srcs):
            reproject(
                source=src.read().astype(np.float32),
                destination=stack[i],
                src_transform=src.transform,
                src_crs=src.crs,
                src_nodata=src.nodata,
                dst_transform=transform,
                dst_crs=dst_crs,
                dst_nodata=np.nan,
                resampling=method,
            )
        dtype = np.dtype(first.dtypes[0])
        nodata = first.nodata
        descriptions = tuple(first.descriptions)
        tags = {k: v for k, v in first.tags().items() if k != "AREA_OR_POINT"}
    finally:
        for src in srcs:
            src.close()
    merged, count = combine(stack, rule)
    tags = tags | {"MOSAIC_RULE": rule, "MOSAIC_TILES": str(len(paths))}
    grid = {"crs": dst_crs, "transform": transform, "width": width, "height": height}
    profile = geotiff_profile(
        **grid, count=merged.shape[0], dtype=dtype.name, nodata=nodata, cog=True
    )
    write_raster(
        dest, _to_dtype(merged, dtype, nodata), profile, band_names=descriptions, tags=tags
    )
    count_profile = geotiff_profile(
        **grid, count=1, dtype="uint16", nodata=None, cog=True, overview_resampling="nearest"
    )
    write_raster(count_dest, count[None], count_profile, band_names=("count",), tags=tags)


def dated_files(tiles_dir: Path) -> dict[str, list[Path]]:
    """``{date: [<tile>/<date>.tif in tile-name order]}`` for a tree of per-tile folders."""
    by_date: dict[str, list[Path]] = {}
    for tile_dir in sorted(p for p in Path(tiles_dir).iterdir() if p.is_dir()):
        for file in sorted(tile_dir.iterdir()):
            if file.is_file() and DATE_FILE.match(file.name):
                by_date.setdefault(file.name[:-4], []).append(file)
    return dict(sorted(by_date.items()))


def mosaic_region(
    tiles_dir: Path,
    dest_dir: Path,
    *,
    rule: str,
    crs: str | None = None,
    resolution: float | None = None,
    resampling: str = "bilinear",
) -> list[Path]:
    """Mosaic every date of ``tiles_dir/<tile>/<date>.tif`` into ``dest_dir`` (atomically).

    Writes ``dest_dir/<date>.tif`` and ``dest_dir/<date>_count.tif`` per date; files not
    named ``YYYY-MM-DD.tif`` (e.g. ``<date>_quality.tif``) are ignored.  ``dest_dir`` is
    built in a temporary sibling and moved into place, replacing any previous one.
    Returns the final paths of the date mosaics (not the count rasters), in date order.
    """
    _check_rule(rule)
    _resampling(resampling)
    tiles_dir = Path(tiles_dir)
    if not tiles_dir.is_dir():
        raise InputDataError(f"tiles directory {tiles_dir} does not exist")
    by_date = dated_files(tiles_dir)
    if not by_date:
        raise InputDataError(f"{tiles_dir}: no <tile>/YYYY-MM-DD.tif files to mosaic")
    dest_dir = Path(dest_dir)
    with atomic_path(dest_dir) as tmp:
        tmp.mkdir()
        for date, paths in by_date.items():
            mosaic_date(
                paths,
                tmp / f"{date}.tif",
                tmp / f"{date}_count.tif",
                rule=rule,
                crs=crs,
                resolution=resolution,
                resampling=resampling,
            )
    return [dest_dir / f"{date}.tif" for date in by_date]
