"""Region grids, tile windows, spatial-block splits and tile writing shared by the sources.

Reads rasters onto a region grid (:func:`read_on_grid`); writes a tile's image, cloud mask and
cloud probability GeoTIFFs (:func:`write_tile`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, NODATA, REFLECTANCE_SCALE
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import geotiff_profile, write_raster

MASK_TAGS = {"CLASSES": "0=clear,1=cloud,2=thin_cloud,3=shadow"}
SPLIT_STREAM = 3  # random stream of the block-to-split draw: np.random.default_rng([seed, 3])


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and size."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + self.height * t.e, t.c + self.width * t.a, t.f)

    def window(self, win: Window) -> Grid:
        """The sub-grid of a pixel window."""
        col, row = int(win.col_off), int(win.row_off)
        return Grid(self.crs, self.transform @ Affine.translation(col, row), win.width, win.height)

    @classmethod
    def covering(cls, crs: CRS, bounds: Sequence[float], resolution: float) -> Grid:
        """The grid of ``resolution`` snapped to multiples of it that covers ``bounds``."""
        left, bottom, right, top = bounds
        left = math.floor(left / resolution) * resolution
        top = math.ceil(top / resolution) * resolution
        width = max(1, math.ceil(round((right - left) / resolution, 6)))
        height = max(1, math.ceil(round((top - bottom) / resolution, 6)))
        return cls(crs, Affine(resolution, 0.0, left, 0.0, -resolution, top), width, height)


@contextmanager
def open_raster(path: str | os.PathLike[str], what: str = "GeoTIFF") -> Iterator[Any]:
    """Open a raster; an unreadable or corrupt file raises InputDataError naming it."""
    try:
        src = rasterio.open(path)
    except RasterioError as exc:
        raise InputDataError(f"{path}: cannot open this {what} ({exc})") from exc
    with src:
        yield src


def read_on_grid(
    path: str | os.PathLike[str],
    grid: Grid,
    *,
    resampling: Resampling,
    indexes: Sequence[int] | None = None,
    src_nodata: float | None = None,
    dst_nodata: float = 0,
    dtype: str = "float32",
) -> np.ndarray:
    """(bands, H, W) of ``path`` reprojected onto ``grid``; pixels it does not cover are
    ``dst_nodata``.  Reading errors (a truncated file) raise InputDataError naming the file."""
    with open_raster(path) as src:
        if src.crs is None:
            raise InputDataError(f"{path}: has no CRS; it cannot be placed on the region grid")
        nodata = src.nodata if src_nodata is None else src_nodata
        try:
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                src_nodata=nodata,
                nodata=dst_nodata,
                dtype=dtype,
            ) as vrt:
                return vrt.read(indexes=list(indexes) if indexes else None)
        except RasterioError as exc:
            raise InputDataError(
                f"{path}: cannot read pixels ({exc}); truncated or corrupt?"
            ) from exc


@dataclass(frozen=True, kw_only=True)
class Tiling:
    """Cropping and split settings shared by the sources that cut a region into tiles."""

    tile_size: int
    overlap: int
    min_valid: float
    block: int
    val_fraction: float
    test_fraction: float
    seed: int

    def windows(self, width: int, height: int) -> dict[str, Window]:
        return tile_windows(width, height, self.tile_size, self.overlap)

    def splits(self, tiles: Mapping[str, Window]) -> dict[str, str]:
        return block_splits(
            tiles, block=self.block, val_fraction=self.val_fraction,
            test_fraction=self.test_fraction, seed=self.seed,
        )  # fmt: skip


def tile_windows(width: int, height: int, size: int, overlap: int) -> dict[str, Window]:
    """Tile id ``r<row>c<col>`` -> window of ``size`` px, neighbours sharing ``overlap`` px.

    The last row and column are moved back to end at the region's edge, so every pixel is
    in a tile and every tile is whole.
    """
    if overlap >= size:
        raise ConfigError(f"overlap ({overlap}) must be smaller than tile_size ({size})")
    if width < size or height < size:
        raise InputDataError(
            f"region grid of {width} x {height} px is smaller than one tile (tile_size {size})"
        )
    step = size - overlap

    def starts(n: int) -> list[int]:
        out = list(range(0, n - size + 1, step))
        if out[-1] + size < n:
            out.append(n - size)
        return out

    return {
        f"r{r}c{c}": Window(x, y, size, size)
        for r, y in enumerate(starts(height))
        for c, x in enumerate(starts(width))
    }


def tile_strips(windows: Mapping[str, Window]) -> list[tuple[Window, list[str]]]:
    """Rows of tiles, top to bottom: the window covering each row (tiles with the same
    ``row_off``) and its tile ids."""
    rows: dict[int, list[str]] = {}
    for tile, win in windows.items():
        rows.setdefault(int(win.row_off), []).append(tile)
    strips = []
    for _, tiles in sorted(rows.items()):
        wins = [windows[t] for t in tiles]
        r0, c0 = min(w.row_off for w in wins), min(w.col_off for w in wins)
        r1 = max(w.row_off + w.height for w in wins)
        c1 = max(w.col_off + w.width for w in wins)
        strips.append((Window(c0, r0, c1 - c0, r1 - r0), tiles))
    return strips


def block_splits(
    tiles: Mapping[str, Window],
    *,
    block: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, str]:
    """Tile id -> split, decided per spatial block of ``block`` x ``block`` tile positions
    (by the tile's upper-left pixel), so neighbouring tiles share a split.  With three or
    more blocks each split gets at least one block; with fewer, the blocks go to train
    first, then test."""
    if not tiles:
        return {}
    xs = sorted({int(w.col_off) for w in tiles.values()})
    ys = sorted({int(w.row_off) for w in tiles.values()})
    groups: dict[tuple[int, int], list[str]] = {}
    for tid, w in tiles.items():
        key = (ys.index(int(w.row_off)) // block, xs.index(int(w.col_off)) // block)
        groups.setdefault(key, []).append(tid)
    blocks = [groups[k] for k in sorted(groups)]
    order = np.random.default_rng([seed, SPLIT_STREAM]).permutation(len(blocks))
    n = len(tiles)
    target = {
        "test": test_fraction * n,
        "val": val_fraction * n,
        "train": (1.0 - val_fraction - test_fraction) * n,
    }
    count = dict.fromkeys(target, 0)
    forced = ("test", "val", "train") if len(blocks) >= 3 else ("train", "test")
    out: dict[str, str] = {}
    for i, b in enumerate(order):
        split = forced[i] if i < len(forced) else max(target, key=lambda s: target[s] - count[s])
        count[split] += len(blocks[b])
        out.update(dict.fromkeys(blocks[b], split))
    return out


def scaled_to_dn(values: np.ndarray, valid: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """A source's values -> uint16 DN of reflectance x 10000 (``value * scale + offset``),
    0 = nodata where not ``valid``.

    Float32 throughout and in place (the hot loop of the folder source)."""
    f32 = np.float32
    refl = values.astype(f32, copy=True)
    refl[:, ~valid] = 0  # NaN where invalid: no cast of NaN to integers
    refl *= f32(scale * REFLECTANCE_SCALE)
    if offset:
        refl += f32(offset * REFLECTANCE_SCALE)
    np.rint(refl, out=refl)
    np.clip(refl, NODATA + 1, 65535, out=refl)
    dn = refl.astype(np.uint16)
    dn[:, ~valid] = NODATA
    return dn


def mask_from_probability(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Cloud mask classes from a probability map: cloud at or above ``threshold``."""
    mask = np.where(prob >= threshold, CLOUD, CLEAR).astype(np.uint8)
    mask[~valid] = MASK_NODATA
    return mask


def write_tile(
    dest: Path,
    tile: str,
    iso: str,
    grid: Grid,
    *,
    image: np.ndarray,
    band_names: Sequence[str],
    mask: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    tags: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write one tile and date (image, and mask/probability if given); return their paths."""
    base = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height)
    tags = {"DATE": iso, **(tags or {})}
    out = {"image": str(dest / tile / f"{iso}_S2.tif"), "mask": "", "probability": ""}
    prof = geotiff_profile(**base, count=image.shape[0], dtype="uint16", nodata=NODATA)
    write_raster(out["image"], image, prof, band_names=band_names, tags=tags)
    if mask is not None:
        out["mask"] = str(dest / tile / f"{iso}_CLD.tif")
        mprof = geotiff_profile(**base, count=1, dtype="uint8", nodata=MASK_NODATA)
        mtags = {**tags, **MASK_TAGS}
        write_raster(out["mask"], mask, mprof, band_names=["cloud_mask"], tags=mtags)
    if probability is not None:
        out["probability"] = str(dest / tile / f"{iso}_PROB.tif")
        pprof = geotiff_profile(**base, count=1, dtype="float32", nodata=None)
        write_raster(out["probability"], probability.astype(np.float32), pprof, tags=tags)
    return out
