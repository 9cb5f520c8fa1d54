"""The ``folder`` source: any folder of per-date GeoTIFFs with cloud masks or probabilities.

Dates come from the file names (a regex), the images of one series may differ in CRS,
resolution and extent: every file is warped onto one region grid (``resampling`` for the
bands, bilinear for probabilities, nearest for masks) one row of tiles at a time, cut into
tiles with overlap, tiles with too little valid data are dropped, and the split is decided
per spatial block of tiles.  Reads the files the globs match; writes
``<dest>/<tile>/<date>_S2.tif``, ``_CLD.tif`` (or ``_PROB.tif``) and returns the manifest rows.
"""

from __future__ import annotations

import glob
import logging
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
from cloudfree.tiles.grid import (
    Grid,
    Tiling,
    mask_from_probability,
    open_raster,
    read_on_grid,
    scaled_to_dn,
    tile_strips,
    write_tile,
)
from cloudfree.tiles.settings import check_keys

SOURCE = "folder"
MASK_VALUES = (0, 1, 2, 3, MASK_NODATA)
DATE_FORMATS = ("%Y%m%d", "%Y-%m-%d", "%Y_%m_%d")
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

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> FolderSpec:
        """Build from a resolved ``folder`` section; checks what the schema cannot."""
        check_keys("folder", cfg, cls)
        if not cfg["images"]:
            raise ConfigError("folder.images: a glob pattern of the image files is required")
        if cfg["masks"] and cfg["probabilities"]:
            raise ConfigError("folder: give either masks or probabilities, not both")
        args = dict(cfg)
        for key in ("bands", "band_indexes"):
            if args[key] is not None:
                args[key] = tuple(args[key])
        spec = cls(**args)
        if spec.band_indexes is not None and len(spec.band_indexes) != len(spec.bands):
            raise ConfigError("folder.band_indexes: needs one index per name in folder.bands")
        try:
            re.compile(spec.date_regex)
        except re.error as exc:
            raise ConfigError(f"folder.date_regex: {exc}") from exc
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


def files_by_date(pattern: str, regex: str, what: str) -> dict[str, str]:
    """Date -> file for a glob; an empty glob or two files of one date are errors."""
    files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise InputDataError(f"folder.{what}: no files match {pattern!r}")
    out: dict[str, str] = {}
    for path in files:
        iso = parse_date(path, regex)
        if iso in out:
            raise InputDataError(f"{path}: date {iso} is also in {out[iso]} (folder.{what})")
        out[iso] = path
    return out


def _check_image(path: str, spec: FolderSpec) -> tuple[CRS, float, tuple[float, ...]]:
    with open_raster(path) as src:
        need = max(spec.band_indexes) if spec.band_indexes else len(spec.bands)
        ok = src.count >= need if spec.band_indexes else src.count == need
        if not ok:
            raise InputDataError(
                f"{path}: {src.count} bands, but folder.bands lists {len(spec.bands)} "
                f"({', '.join(spec.bands)})"
                + (f" and band_indexes go up to {need}" if spec.band_indexes else "")
            )
        if src.crs is None:
            raise InputDataError(f"{path}: has no CRS; it cannot be placed on a region grid")
        return src.crs, float(src.res[0]), tuple(src.bounds)


def _check_aligned(mask_path: str, image_path: str, image_crs: CRS, image_bounds: tuple) -> None:
    """A mask must be georeferenced and cover its image; then it can be warped onto it."""
    with open_raster(mask_path, "cloud mask") as src:
        if src.crs is None:
            raise InputDataError(
                f"{mask_path}: cloud mask has no CRS, so it cannot be aligned with {image_path}"
            )
        left, bottom, right, top = transform_bounds(src.crs, image_crs, *src.bounds)
    il, ib, ir, it = image_bounds
    w = max(0.0, min(right, ir) - max(left, il))
    h = max(0.0, min(top, it) - max(bottom, ib))
    cover = w * h / max((ir - il) * (it - ib), 1e-12)
    if cover < 0.99:
        raise InputDataError(
            f"{mask_path}: cloud mask covers {cover:.0%} of {image_path}; it is on another "
            "grid that cannot be aligned with the image"
        )


def _date_on_grid(
    iso: str,
    path: str,
    masks: Mapping[str, str],
    probs: Mapping[str, str],
    grid: Grid,
    spec: FolderSpec,
    resampling: Resampling,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """One date on the region grid: DN, mask, probability (or None) and valid pixels."""
    data = read_on_grid(
        path, grid, resampling=resampling, indexes=spec.band_indexes,
        src_nodata=spec.nodata, dst_nodata=np.nan,
    )  # fmt: skip
    valid = ~np.isnan(data).any(axis=0)
    dn = scaled_to_dn(data, valid, spec.scale, spec.offset)  # NaN only where invalid: set to 0
    mask = prob = None
    if masks:
        mask = read_on_grid(
            masks[iso], grid, resampling=Resampling.nearest, src_nodata=MASK_NODATA,
            dst_nodata=MASK_NODATA, dtype="uint8",
        )[0]  # fmt: skip
        bad = sorted(set(np.unique(mask).tolist()) - set(MASK_VALUES))
        if bad:
            raise InputDataError(
                f"{masks[iso]}: cloud mask values {bad[:5]} are not classes {MASK_VALUES}"
            )
        mask[~valid] = MASK_NODATA
    elif probs:
        # Probabilities are a continuous field: bilinear whatever the bands' resampling.
        prob = read_on_grid(probs[iso], grid, resampling=Resampling.bilinear, dst_nodata=np.nan)[0]
        ok = valid & ~np.isnan(prob)
        mask = mask_from_probability(np.nan_to_num(prob), ok, spec.threshold)
    return dn, mask, prob, valid


def folder_tiles(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """Warp, crop and write a folder's images and masks as tiles; return manifest rows."""
    spec = FolderSpec.from_dict(cfg)
    images = files_by_date(spec.images, spec.date_regex, "images")
    masks = files_by_date(spec.masks, spec.date_regex, "masks") if spec.masks else {}
    probs = (
        files_by_date(spec.probabilities, spec.date_regex, "probabilities")
        if spec.probabilities
        else {}
    )
    meta = {iso: _check_image(path, spec) for iso, path in images.items()}
    first = meta[min(meta)]
    try:
        crs = CRS.from_user_input(spec.crs) if spec.crs else first[0]
    except CRSError as exc:
        raise ConfigError(f"folder.crs: {exc}") from exc
    res = float(spec.resolution or first[1])
    boxes = [transform_bounds(c, crs, *b) for c, _, b in meta.values()]
    union = (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
    grid = Grid.covering(crs, union, res)
    for iso, path in images.items():
        other = masks or probs
        if other:
            if iso not in other:
                raise InputDataError(f"{path}: no cloud mask or probability file for date {iso}")
            _check_aligned(other[iso], path, meta[iso][0], meta[iso][2])
    windows = spec.windows(grid.width, grid.height)
    valid_sum = dict.fromkeys(windows, 0.0)
    written: dict[str, dict[str, dict[str, str]]] = {t: {} for t in windows}
    resampling = Resampling[spec.resampling]
    # Each date is warped one row of tiles (a strip) at a time, so memory follows the
    # region's width, not its area.  GDAL compresses with the GIL released: threads write
    # one strip's tiles while the next strip is warped (one strip in flight).
    pending: dict[tuple[str, str], Future[dict[str, str]]] = {}
    strips = tile_strips(windows)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for iso in sorted(images):
            path = images[iso]
            for strip, tiles in strips:
                dn, mask, prob, valid = _date_on_grid(
                    iso, path, masks, probs, grid.window(strip), spec, resampling
                )
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
                        tags={"SOURCE": SOURCE, "SOURCE_FILE": path},
                    )  # fmt: skip
        for key, job in pending.items():
            written[key[0]][key[1]] = job.result()
    n_dates = len(images)
    keep = {t: w for t, w in windows.items() if valid_sum[t] / n_dates >= spec.min_valid}
    for tile in set(windows) - set(keep):
        shutil.rmtree(dest / tile, ignore_errors=True)
    if not keep:
        raise InputDataError(
            f"folder.images {spec.images!r}: no tile has a valid fraction >= {spec.min_valid}"
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
