"""A GeoTIFF series of one scene, read for a trained model, and its reconstruction written.

The input is one band GeoTIFF and one cloud mask a date, all on one grid (CRS, transform,
size; the images with one band count): what ``cloudfree predict`` takes, and what the tiles
stage writes (``<tile>/<date>_S2.tif`` and ``_CLD.tif``).  Pixels are integer digital
numbers (reflectance x 10000); a file whose bands all have descriptions is read by them, in
any order (``B04``, ``b4`` and ``B04 L1C TOA reflectance`` name B04, as the ``folder``
source reads them), one without by position, which then needs the model's band count.
Masks hold the tiles stage's classes (0 clear, 1 cloud, 2 thin cloud, 3 shadow, 255 or the
file's nodata: no data; a 0/1 or boolean mask is clear/cloud), checked in the file's own
dtype.  A pixel at the image's nodata in every band is no data; it becomes 0, the chain's
nodata, and so it is in the outputs.

Dates come from ``dates``, else each image's ``DATE`` tag, else its file name (the
``folder`` source's ``date_regex``).  Every header is checked before any pixel is read; each
error names the file.  The result is a :class:`~cloudfree.packed.TileSeries` sorted by date,
which :func:`reconstruct_series` runs through the same predictor, gap filling, quality
classes and writers as the ``infer`` rule (:mod:`cloudfree.infer.region`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from cloudfree.bands import NODATA
from cloudfree.errors import InputDataError
from cloudfree.infer.predictor import Predictor
from cloudfree.infer.region import fill_gaps, quality_layer, write_reconstruction
from cloudfree.names import check_date, check_name
from cloudfree.pack.load import checked_mask
from cloudfree.packed import TileSeries, day_of_year
from cloudfree.tiles.folder import parse_date
from cloudfree.tiles.folder_bands import band_key, description_keys

Paths = Sequence[str | os.PathLike[str]]
# Values (dates x bands x pixels) of one series at most: 4 GiB as uint16, and the predictor
# holds them as float32 beside its blended outputs (e.g. 30 dates of 13 bands, 2048 x 2048 px).
MAX_PIXELS = 1 << 31


@dataclass(frozen=True)
class Header:
    """What a GeoTIFF's header tells, read before its pixels."""

    path: str
    crs: CRS | None
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    descriptions: tuple[str | None, ...]
    tags: dict[str, str]


def read_header(path: str | os.PathLike[str], what: str) -> Header:
    try:
        with rasterio.open(path) as src:
            return Header(
                str(path), src.crs, src.transform, src.width, src.height, src.count,
                src.dtypes[0], src.nodata, tuple(src.descriptions), dict(src.tags()),
            )  # fmt: skip
    except (RasterioError, OSError) as exc:
        raise InputDataError(f"cannot read {what} {path}: {exc}") from exc


def band_order(head: Header, bands: Sequence[str]) -> list[int] | None:
    """0-based positions of the model's ``bands`` in a file (None: all, in file order)."""
    names = [str(d).strip() if d else "" for d in head.descriptions]
    wanted = ", ".join(bands)
    if not all(names):
        if head.count != len(bands):
            raise InputDataError(
                f"{head.path}: {head.count} bands without names (band descriptions), but the "
                f"model takes {len(bands)} ({wanted}); name the bands or give the model's"
            )
        return None
    found: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        for key in description_keys(name):
            found.setdefault(key, []).append(i)
    missing = [b for b in bands if band_key(b) not in found]
    twice = [b for b in bands if len(found.get(band_key(b), [])) > 1]
    if missing or twice:
        problem = f"{', '.join(missing)} missing" if missing else f"{', '.join(twice)} twice"
        raise InputDataError(
            f"{head.path}: bands {', '.join(names)}; the model takes {wanted}: {problem}"
        )
    order = [found[band_key(b)][0] for b in bands]
    return None if order == list(range(head.count)) else order


def same_grid(head: Header, first: Header, what: str) -> None:
    """InputDataError naming both files unless ``head`` lies on ``first``'s grid."""
    if head.crs is None:
        raise InputDataError(f"{head.path}: no CRS; the {what} must be georeferenced")
    for name, a, b in (
        ("CRS", head.crs, first.crs),
        ("transform", tuple(head.transform), tuple(first.transform)),
        ("size (width, height)", (head.width, head.height), (first.width, first.height)),
    ):
        if a != b:
            raise InputDataError(
                f"{head.path}: {what} {name} {a} differs from {first.path}'s {b}; every image "
                "and mask of the series must be on one grid (warp them first, e.g. gdalwarp)"
            )


def series_dates(
    heads: Sequence[Header], dates: Sequence[str] | None, date_regex: str
) -> list[str]:
    """The date of each image: ``dates``, else its DATE tag, else its file name."""
    if dates is not None:
        if len(dates) != len(heads):
            raise InputDataError(f"{len(dates)} dates for {len(heads)} images")
        return [check_date(str(d), f"date of {h.path}") for d, h in zip(dates, heads, strict=True)]
    out = []
    for head in heads:
        tag = head.tags.get("DATE", "").strip()
        out.append(check_date(tag, f"{head.path} DATE tag") if tag else "")
        if not tag:
            out[-1] = parse_date(head.path, date_regex)
    return out


def read_series(
    images: Paths,
    masks: Paths,
    *,
    bands: Sequence[str],
    date_regex: str,
    dates: Sequence[str] | None = None,
    tile: str = "scene",
) -> TileSeries:
    """The series of ``images`` (one a date) and their cloud ``masks`` (same order) for a
    model of ``bands``, sorted by date; InputDataError naming the file for anything wrong."""
    check_name(tile, "tile", "--tile")
    if not images:
        raise InputDataError("no images given")
    if len(masks) != len(images):
        raise InputDataError(f"{len(masks)} masks for {len(images)} images: give one a date")
    heads = [read_header(p, "image") for p in images]
    mheads = [read_header(p, "cloud mask") for p in masks]
    first = heads[0]
    orders = []
    for head in heads:
        same_grid(head, first, "image")
        if np.dtype(head.dtype).kind not in "ui":
            raise InputDataError(
                f"{head.path}: {head.dtype} pixels; the model takes integer digital numbers "
                "(reflectance x 10000, uint16)"
            )
        orders.append(band_order(head, bands))
    for mhead in mheads:
        same_grid(mhead, first, "cloud mask")
        if mhead.count != 1:
            raise InputDataError(f"{mhead.path}: cloud mask of {mhead.count} bands, expected 1")
    found = series_dates(heads, dates, date_regex)
    seen: dict[str, str] = {}
    for iso, head in zip(found, heads, strict=True):
        if iso in seen:
            raise InputDataError(f"{head.path}: date {iso} is also the date of {seen[iso]}")
        seen[iso] = head.path
    if len(heads) * len(bands) * first.width * first.height > MAX_PIXELS:
        raise InputDataError(
            f"{first.path}: {len(heads)} dates of {len(bands)} bands x {first.width} x "
            f"{first.height} px is more than one series may hold; cut the scene into tiles"
        )
    index = sorted(range(len(heads)), key=lambda i: found[i])
    s2 = np.empty((len(heads), len(bands), first.height, first.width), dtype=np.uint16)
    mask = np.empty((len(heads), first.height, first.width), dtype=np.uint8)
    for t, i in enumerate(index):
        s2[t], mask[t] = _read_date(heads[i], mheads[i], orders[i], f"date {found[i]}")
    iso = [found[i] for i in index]
    return TileSeries(
        tile=tile, split="test", s2=s2, mask=mask, dates=iso, doy=day_of_year(iso),
        crs=first.crs, transform=first.transform, nodata=NODATA,
    )  # fmt: skip


def _read_date(
    head: Header, mhead: Header, order: list[int] | None, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """One date's DN (nodata set to 0) and mask classes."""
    try:
        with rasterio.open(head.path) as src:
            img = src.read()
        with rasterio.open(mhead.path) as src:
            raw = src.read(1)
    except (RasterioError, OSError) as exc:
        raise InputDataError(f"cannot read {head.path} or {mhead.path} ({where}): {exc}") from exc
    if order is not None:
        img = img[order]
    if img.max(initial=0) > np.iinfo(np.uint16).max or img.min(initial=0) < 0:
        raise InputDataError(f"{head.path} ({where}): values outside 0..65535 (uint16 DN)")
    if head.nodata is not None and head.nodata != NODATA:
        img = np.where((img == head.nodata).all(axis=0), NODATA, img)
    mask = checked_mask(mhead.path, raw, mhead.nodata, where)
    return img.astype(np.uint16, copy=False), mask


def reconstruct_series(
    predictor: Predictor,
    tile: TileSeries,
    out_dir: str | os.PathLike[str],
    *,
    compress: str,
    tags: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Write ``out_dir/<date>.tif`` and ``<date>_quality.tif`` of every date as the infer
    rule does; returns the raw (T, C, H, W) float32 reflectance of the network."""
    pred = predictor.reconstruct(tile.s2, tile.clear, tile.doy)
    write_reconstruction(
        tile, fill_gaps(tile, pred), quality_layer(tile), Path(out_dir), compress,
        dict(tags or {}), band_names=predictor.bands,
    )  # fmt: skip
    return pred
