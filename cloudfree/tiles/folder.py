"""The ``folder`` source: any folder of per-date GeoTIFFs with cloud masks or probabilities.

Dates come from the file names (a regex); a date may have several files (two granules of
one overpass, overlapping orbits, two processing baselines), merged into one date on the
tile grid by ``same_date`` (:mod:`cloudfree.tiles.same_date`, recorded in the manifest's
``acquisitions`` and ``merge`` columns).  The images of one series may differ in CRS,
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

from cloudfree.bands import MASK_NODATA, NODATA
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import manifest_row
from cloudfree.progress import Progress
from cloudfree.tiles.folder_checks import (
    Image,
    ValueStats,
    check_aligned,
    check_dtypes,
    check_strip_memory,
    drop_outliers,
)
from cloudfree.tiles.folder_s1 import S1_UNITS, S1Match, check_s1_file, match_s1, s1_on_grid
from cloudfree.tiles.folder_same_date import Key, by_date, check_images, pair_by_date
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
from cloudfree.tiles.same_date import (
    SEPARATOR,
    Layers,
    check_same_date,
    log_merge,
    merge,
    merge_record,
)
from cloudfree.tiles.settings import check_keys

SOURCE = "folder"
DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%Y_%m_%d")
OUTLIER_RULES = ("error", "drop")
NO_MASK = (MASK_NODATA, "uint8")  # how a date without a mask file would read one
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
    same_date: str  # how the acquisitions of one date are merged (cloudfree.tiles.same_date)
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
        check_same_date(spec.same_date, where)
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


def acquisitions_by_date(
    pattern: str, regex: str, what: str, where: str = "folder"
) -> dict[str, list[str]]:
    """Date -> its files (its acquisitions, in file-name order) for a glob; an empty glob is
    an error, and so is a file matched twice (one path, or one file through a link)."""
    files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise InputDataError(f"{where}.{what}: no files match {pattern!r}")
    out: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for path in files:
        real = os.path.realpath(path)
        if real in seen:
            raise InputDataError(
                f"{path}: the same file as {seen[real]}; {where}.{what} {pattern!r} matches "
                "it twice, and one acquisition would be merged with itself"
            )
        seen[real] = path
        out.setdefault(parse_date(path, regex), []).append(path)
    return {iso: sorted(paths, key=lambda p: (Path(p).name, p)) for iso, paths in out.items()}


def files_by_date(pattern: str, regex: str, what: str, where: str = "folder") -> dict[str, str]:
    """Date -> file for a glob of one file a date; an empty glob or two files of one date
    are errors."""
    out = acquisitions_by_date(pattern, regex, what, where)
    for iso, paths in out.items():
        if len(paths) > 1:
            raise InputDataError(f"{paths[1]}: date {iso} is also in {paths[0]} ({where}.{what})")
    return {iso: paths[0] for iso, paths in out.items()}


def _date_on_grid(
    image: Image,
    mask_path: str | None,
    mask_read: tuple[float, str],
    prob_path: str | None,
    grid: Grid,
    spec: FolderSpec,
    resampling: Resampling,
    stats: ValueStats,
) -> Layers:
    """One acquisition on the region grid: DN, mask, probability (or None) and valid pixels."""
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
    return Layers(dn, mask, prob, valid)


def _region_grid(
    images: dict[Key, Image], spec: FolderSpec, where: str
) -> tuple[Grid, dict[Key, tuple[float, ...]]]:
    """The grid covering the images (CRS and resolution of the configured ones, else of the
    first date's image) and each image's footprint in its CRS."""
    first = images[min(images)]
    try:
        crs = CRS.from_user_input(spec.crs) if spec.crs else first.crs
    except CRSError as exc:
        raise ConfigError(f"{where}.crs: {exc}") from exc
    res = float(spec.resolution or first.res)
    boxes = {key: tuple(transform_bounds(m.crs, crs, *m.bounds)) for key, m in images.items()}
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
    """Warp, crop and write a folder's images and masks as tiles (the acquisitions of one
    date merged, :mod:`cloudfree.tiles.same_date`); return manifest rows."""
    where = f"regions.{region}.folder"
    spec = FolderSpec.from_dict(cfg, where)
    paths = acquisitions_by_date(spec.images, spec.date_regex, "images", where)
    masks = probs = {}
    if spec.masks:
        found = acquisitions_by_date(spec.masks, spec.date_regex, "masks", where)
        masks = pair_by_date(paths, found, f"{where}.masks")
    elif spec.probabilities:
        found = acquisitions_by_date(spec.probabilities, spec.date_regex, "probabilities", where)
        probs = pair_by_date(paths, found, f"{where}.probabilities")
    images = check_images(paths, spec, where)
    check_dtypes(images, where)
    grid, boxes = _region_grid(images, spec, where)
    dropped = drop_outliers(images, boxes, spec, where)
    if dropped:
        images = {key: m for key, m in images.items() if key not in dropped}
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
    dates = by_date(list(images))
    check_strip_memory(strips, spec, region, where, max(map(len, dates.values())))
    other = masks or probs
    mask_read: dict[Key, tuple[float, str]] = {}
    for key, image in images.items():
        if other:
            check_aligned(other[key], image.path, image.crs, image.bounds)
        if masks:
            mask_read[key] = check_mask_file(masks[key], f"date {key[0]}")
    s1 = _s1_matches(spec, list(dates), where)
    valid_sum = dict.fromkeys(windows, 0.0)
    written: dict[str, dict[str, dict[str, str]]] = {t: {} for t in windows}
    merged: dict[str, dict[str, dict[str, str]]] = {t: {} for t in windows}
    resampling = Resampling[spec.resampling]
    # Each date is warped one row of tiles (a strip) at a time, so memory follows the
    # region's width, not its area.  GDAL compresses with the GIL released: threads write
    # one strip's tiles while the next strip is warped (one strip in flight).
    pending: dict[tuple[str, str], Future[dict[str, str]]] = {}
    progress = Progress(log, f"{where}: dates", len(dates))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for iso, keys in dates.items():
            stats = {key: ValueStats.for_scale(spec.scale, spec.offset) for key in keys}
            for strip, tiles in strips:
                layers = []
                for key in keys:
                    layers.append(_date_on_grid(
                        images[key], masks.get(key), mask_read.get(key, NO_MASK),
                        probs.get(key), grid.window(strip), spec, resampling, stats[key],
                    ))  # fmt: skip
                radar = None
                if iso in s1:
                    radar = s1_on_grid(s1[iso], grid.window(strip), spec.s1_units, where)
                for job_key, job in pending.items():
                    written[job_key[0]][job_key[1]] = job.result()  # re-raises write errors
                pending = {}
                for tile in tiles:
                    win = windows[tile]
                    r0, c0 = win.row_off - strip.row_off, win.col_off - strip.col_off
                    rows, cols = slice(r0, r0 + win.height), slice(c0, c0 + win.width)
                    date, taken = merge(
                        [layer.cut(rows, cols) for layer in layers], spec.same_date, NODATA
                    )
                    files = [keys[i][1] for i in taken]
                    log_merge(where, tile, iso, files, spec.same_date)
                    merged[tile][iso] = merge_record(files, spec.same_date)
                    valid_sum[tile] += float(date.valid.mean())
                    tags = {"SOURCE": SOURCE, "SOURCE_FILE": SEPARATOR.join(files)}
                    if len(files) > 1:
                        tags["SAME_DATE"] = spec.same_date
                    pending[tile, iso] = pool.submit(
                        write_tile, dest, tile, iso, grid.window(win), image=date.image,
                        band_names=spec.bands, mask=date.mask, probability=date.probability,
                        s1=None if radar is None else radar[:, rows, cols], tags=tags,
                        s1_tags=_s1_tags(s1.get(iso)),
                    )  # fmt: skip
            for key in keys:
                stats[key].check(images[key], spec, where)
            progress.step()
        for job_key, job in pending.items():
            written[job_key[0]][job_key[1]] = job.result()
    n_dates = len(dates)
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
            region, SOURCE, tile, iso, splits[tile], grid.window(win), **written[tile][iso],
            **merged[tile][iso],
        )
        for tile, win in keep.items()
        for iso in dates
    ]  # fmt: skip
    return pd.DataFrame(rows)
