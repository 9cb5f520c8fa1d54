"""The ``folder`` source: any folder of per-date GeoTIFFs with cloud masks or probabilities.

Dates come from the file names (a regex), the images of one series may differ in CRS,
resolution and extent: every file is warped onto one region grid (``resampling`` for the
bands, bilinear for probabilities, nearest for masks) one row of tiles at a time, cut into
tiles with overlap, tiles with too little valid data are dropped, and the split is decided
per spatial block of tiles.  Reads the files the globs match; writes
``<dest>/<tile>/<date>_S2.tif``, ``_CLD.tif`` (or ``_PROB.tif``) and returns the manifest rows.

What is checked before anything is cast or allocated (:mod:`cloudfree.tiles.folder_checks`,
bands by :mod:`cloudfree.tiles.folder_bands`), each error naming the file and date:
bands are taken by their descriptions when the files have them (any order; a configured
band missing is an error), by position otherwise; all dates are integers (DN) or all are
floats (reflectance), and their valid values, scaled, are plausible reflectance (non-finite
values become nodata, counted in the log); cloud masks hold only classes, in their own
dtype; a date whose footprint lies off the others' is refused or left out
(``outliers``); the region grid has at most ``max_tiles`` tiles and one row of them fits in
``max_memory_gb``.
"""

from __future__ import annotations

import glob
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.warp import transform_bounds

from cloudfree.bands import MASK_NODATA
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import manifest_row
from cloudfree.progress import Progress
from cloudfree.tiles.folder_checks import (
    Image,
    ValueStats,
    check_aligned,
    check_dtypes,
    check_image,
    check_strip_memory,
    drop_outliers,
)
from cloudfree.tiles.folder_s1 import S1_UNITS, S1Match, check_s1_file, match_s1, s1_on_grid
from cloudfree.tiles.grid import (
    Grid,
    Tiling,
    check_mask_file,
    mask_from_probability,
    read_on_grid,
    scaled_to_dn,
    tile_strips,
    write_tile,
)
from cloudfree.tiles.settings import check_keys

SOURCE = "folder"
DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%Y_%m_%d")
OUTLIER_RULES = ("error", "drop")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderSpec(Tiling):
    """The ``folder`` section of a region (see the config schema for each key)."""

    images: str
    masks: str | None
    probabilities: str | None
    threshold: float
    date_regex: str
    bands: tuple[str, ...]
    band_indexes: tuple[int, ...] | None
    scale: float
    offset: float
    nodata: float | None
    crs: str | None
    resolution: float | None
    resampling: str  # a name of rasterio's Resampling (the schema lists the allowed ones)
    outliers: str = "error"  # a date far off the others' footprint: "error" or "drop"
    max_memory_gb: float = 16.0
    s1: str | None = None  # glob of Sentinel-1 VV/VH files (cloudfree.tiles.folder_s1)
    s1_date_regex: str | None = None  # default: date_regex
    s1_max_days: int = 6
    s1_units: str = "db"

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any], where: str = "folder") -> FolderSpec:
        """Build from a resolved ``folder`` section; checks what the schema cannot.  Errors
        name the key under ``where`` (``regions.<name>.folder`` in the workflow)."""
        check_keys(where, cfg, cls)
        if not cfg["images"]:
            raise ConfigError(f"{where}.images: a glob pattern of the image files is required")
        if cfg["masks"] and cfg["probabilities"]:
            raise ConfigError(f"{where}: give either masks or probabilities, not both")
        args = dict(cfg)
        for key in ("bands", "band_indexes"):
            if args[key] is not None:
                args[key] = tuple(args[key])
        spec = cls(**args)
        if spec.band_indexes is not None and len(spec.band_indexes) != len(spec.bands):
            raise ConfigError(f"{where}.band_indexes: needs one index per name in {where}.bands")
        try:
            re.compile(spec.date_regex)
        except re.error as exc:
            raise ConfigError(f"{where}.date_regex: {exc}") from exc
        if not (isinstance(spec.scale, (int, float)) and 0 < spec.scale < math.inf):
            raise ConfigError(
                f"{where}.scale: {spec.scale!r} must be > 0 and finite (reflectance = value * "
                "scale + offset; DN x 10000: 0.0001, reflectance 0..1: 1); 0 or less would "
                "make every pixel DN 1"
            )
        if not math.isfinite(spec.offset):
            raise ConfigError(f"{where}.offset: {spec.offset!r} must be a finite number")
        if spec.outliers not in OUTLIER_RULES:
            raise ConfigError(
                f"{where}.outliers: {spec.outliers!r} is not one of {list(OUTLIER_RULES)}"
            )
        if spec.s1_units not in S1_UNITS:
            raise ConfigError(f"{where}.s1_units: {spec.s1_units!r} is not one of {S1_UNITS}")
        if spec.s1_date_regex is not None:
            try:
                re.compile(spec.s1_date_regex)
            except re.error as exc:
                raise ConfigError(f"{where}.s1_date_regex: {exc}") from exc
        if not spec.max_memory_gb > 0:
            raise ConfigError(f"{where}.max_memory_gb: {spec.max_memory_gb!r} must be > 0")
        return spec


def parse_date(path: str, regex: str) -> str:
    """ISO date read from a file name with ``regex`` (first group, or the whole match)."""
    m = re.search(regex, Path(path).name)
    if not m:
        raise InputDataError(f"{path}: no date in the file name (date_regex {regex!r})")
    text = m.group(1) if m.groups() else m.group(0)
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise InputDataError(f"{path}: {text!r} from the file name is not a date (YYYYMMDD or ISO)")


def files_by_date(pattern: str, regex: str, what: str, where: str = "folder") -> dict[str, str]:
    """Date -> file for a glob; an empty glob or two files of one date are errors."""
    files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise InputDataError(f"{where}.{what}: no files match {pattern!r}")
    out: dict[str, str] = {}
    for path in files:
        iso = parse_date(path, regex)
        if iso in out:
            raise InputDataError(f"{path}: date {iso} is also in {out[iso]} ({where}.{what})")
        out[iso] = path
    return out


def _date_on_grid(
    image: Image,
    mask_path: str | None,
    mask_read: tuple[float, str],
    prob_path: str | None,
    grid: Grid,
    spec: FolderSpec,
    resampling: Resampling,
    stats: ValueStats,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """One date on the region grid: DN, mask, probability (or None) and valid pixels."""
    data = read_on_grid(
        image.path, grid, resampling=resampling, indexes=image.indexes,
        src_nodata=spec.nodata, dst_nodata=np.nan,
    )  # fmt: skip
    inf = np.isinf(data).any(axis=0)
    if inf.any():
        data[:, inf] = np.nan
        stats.nonfinite += int(np.count_nonzero(inf))
    valid = ~np.isnan(data).any(axis=0)
    stats.add(data, valid)
    dn = scaled_to_dn(data, valid, spec.scale, spec.offset)  # NaN only where invalid: set to 0
    mask = prob = None
    if mask_path:
        # Its values were checked in the file's own dtype (check_mask_file), and it is warped
        # in one that holds them and its nodata: only classes and 255 are left to cast.
        nodata, dtype = mask_read
        mask = read_on_grid(
            mask_path, grid, resampling=Resampling.nearest, src_nodata=nodata,
            dst_nodata=MASK_NODATA, dtype=dtype,
        )[0].astype(np.uint8, copy=False)  # fmt: skip
        mask[~valid] = MASK_NODATA
    elif prob_path:
        # Probabilities are a continuous field: bilinear whatever the bands' resampling.
        prob = read_on_grid(prob_path, grid, resampling=Resampling.bilinear, dst_nodata=np.nan)[0]
        ok = valid & ~np.isnan(prob)
        mask = mask_from_probability(np.nan_to_num(prob), ok, spec.threshold)
    return dn, mask, prob, valid


def _region_grid(
    images: dict[str, Image], spec: FolderSpec, where: str
) -> tuple[Grid, dict[str, tuple[float, ...]]]:
    """The grid covering the images (CRS and resolution of the configured ones, else of the
    first date's image) and each image's footprint in its CRS."""
    first = images[min(images)]
    try:
        crs = CRS.from_user_input(spec.crs) if spec.crs else first.crs
    except CRSError as exc:
        raise ConfigError(f"{where}.crs: {exc}") from exc
    res = float(spec.resolution or first.res)
    boxes = {iso: tuple(transform_bounds(m.crs, crs, *m.bounds)) for iso, m in images.items()}
    union = (
        min(b[0] for b in boxes.values()),
        min(b[1] for b in boxes.values()),
        max(b[2] for b in boxes.values()),
        max(b[3] for b in boxes.values()),
    )
    return Grid.covering(crs, union, res), boxes


def _s1_matches(spec: FolderSpec, dates: list[str], where: str) -> dict[str, S1Match]:
    """The Sentinel-1 file of each optical date (none without ``s1``)."""
    if not spec.s1:
        return {}
    files = files_by_date(spec.s1, spec.s1_date_regex or spec.date_regex, "s1", where)
    for iso, path in files.items():
        check_s1_file(path, f"{where}.s1, date {iso}")
    matches = match_s1(dates, files, spec.s1_max_days)
    log.info("Sentinel-1 for %d of %d dates (within %d days)", len(matches), len(dates),
             spec.s1_max_days)  # fmt: skip
    return matches


def _s1_tags(match: S1Match | None) -> dict[str, str] | None:
    if match is None:
        return None
    return {"S1_DATE": match.date, "S1_DAYS": str(match.days), "S1_SOURCE_FILE": match.path}


def folder_tiles(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """Warp, crop and write a folder's images and masks as tiles; return manifest rows."""
    where = f"regions.{region}.folder"
    spec = FolderSpec.from_dict(cfg, where)
    paths = files_by_date(spec.images, spec.date_regex, "images", where)
    masks = files_by_date(spec.masks, spec.date_regex, "masks", where) if spec.masks else {}
    probs = (
        files_by_date(spec.probabilities, spec.date_regex, "probabilities", where)
        if spec.probabilities
        else {}
    )
    images = {iso: check_image(path, iso, spec, where) for iso, path in paths.items()}
    check_dtypes(images, where)
    grid, boxes = _region_grid(images, spec, where)
    dropped = drop_outliers(images, boxes, spec, where)
    if dropped:
        images = {iso: m for iso, m in images.items() if iso not in dropped}
        grid, boxes = _region_grid(images, spec, where)
    try:
        windows = spec.windows(grid.width, grid.height, where)
    except ConfigError as exc:
        big = max(images.values(), key=lambda m: m.width * m.height)
        raise ConfigError(
            f"{exc}. The grid covers every image at {grid.transform.a:g} CRS units a pixel; "
            f"the largest is {big.at}, {big.width} x {big.height} px at {big.res:g}"
        ) from None
    strips = tile_strips(windows)
    check_strip_memory(strips, spec, region, where)
    other = masks or probs
    mask_read: dict[str, tuple[float, str]] = {}
    for iso, image in images.items():
        if other:
            if iso not in other:
                raise InputDataError(
                    f"{image.path}: no cloud mask or probability file for date {iso}"
                )
            check_aligned(other[iso], image.path, image.crs, image.bounds)
        if masks:
            mask_read[iso] = check_mask_file(masks[iso], f"date {iso}")
    s1 = _s1_matches(spec, sorted(images), where)
    valid_sum = dict.fromkeys(windows, 0.0)
    written: dict[str, dict[str, dict[str, str]]] = {t: {} for t in windows}
    resampling = Resampling[spec.resampling]
    # Each date is warped one row of tiles (a strip) at a time, so memory follows the
    # region's width, not its area.  GDAL compresses with the GIL released: threads write
    # one strip's tiles while the next strip is warped (one strip in flight).
    pending: dict[tuple[str, str], Future[dict[str, str]]] = {}
    progress = Progress(log, f"{where}: dates", len(images))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for iso in sorted(images):
            image = images[iso]
            stats = ValueStats.for_scale(spec.scale, spec.offset)
            read = mask_read.get(iso, (MASK_NODATA, "uint8"))
            for strip, tiles in strips:
                dn, mask, prob, valid = _date_on_grid(
                    image, masks.get(iso), read, probs.get(iso), grid.window(strip), spec,
                    resampling, stats,
                )  # fmt: skip
                radar = None
                if iso in s1:
                    radar = s1_on_grid(s1[iso], grid.window(strip), spec.s1_units, where)
                for key, job in pending.items():
                    written[key[0]][key[1]] = job.result()  # re-raises write errors
                pending = {}
                for tile in tiles:
                    win = windows[tile]
                    r0, c0 = win.row_off - strip.row_off, win.col_off - strip.col_off
                    sl = (slice(r0, r0 + win.height), slice(c0, c0 + win.width))
                    valid_sum[tile] += float(valid[sl].mean())
                    pending[tile, iso] = pool.submit(
                        write_tile, dest, tile, iso, grid.window(win),
                        image=dn[(slice(None), *sl)], band_names=spec.bands,
                        mask=None if mask is None else mask[sl],
                        probability=None if prob is None else prob[sl],
                        s1=None if radar is None else radar[(slice(None), *sl)],
                        tags={"SOURCE": SOURCE, "SOURCE_FILE": image.path},
                        s1_tags=_s1_tags(s1.get(iso)),
                    )  # fmt: skip
            stats.check(image, spec, where)
            progress.step()
        for key, job in pending.items():
            written[key[0]][key[1]] = job.result()
    n_dates = len(images)
    keep = {t: w for t, w in windows.items() if valid_sum[t] / n_dates >= spec.min_valid}
    for tile in set(windows) - set(keep):
        shutil.rmtree(dest / tile, ignore_errors=True)
    if not keep:
        raise InputDataError(
            f"{where}.images {spec.images!r}: no tile has a valid fraction >= {spec.min_valid}"
        )
    log.info("%d of %d tiles kept (min_valid %.2f)", len(keep), len(windows), spec.min_valid)
    splits = spec.splits(keep)
    rows = [
        manifest_row(
            region, SOURCE, tile, iso, splits[tile], grid.window(win), **written[tile][iso]
        )
        for tile, win in keep.items()
        for iso in sorted(images)
    ]
    return pd.DataFrame(rows)
