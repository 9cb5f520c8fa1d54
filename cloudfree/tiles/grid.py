"""Region grids, tile windows, spatial-block splits and tile writing shared by the sources.

Reads rasters onto a region grid (:func:`read_on_grid`); writes a tile's image, cloud mask and
cloud probability GeoTIFFs (:func:`write_tile`).  Sizes are checked before anything is
allocated (:meth:`Tiling.windows` against ``max_tiles``, :func:`check_memory`), and cloud
masks in their own dtype before any cast (:func:`bad_mask_values`, :func:`check_mask_file`).
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

from cloudfree.bands import (
    CLEAR,
    CLOUD,
    MASK_CLASSES,
    MASK_NODATA,
    NODATA,
    REFLECTANCE_SCALE,
    S1_BANDS,
    SHADOW,
    THIN_CLOUD,
)
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import geotiff_profile, write_raster

MASK_TAGS = {"CLASSES": MASK_CLASSES}  # written as JSON, like every non-text tag
MASK_VALUES = (CLEAR, CLOUD, THIN_CLOUD, SHADOW, MASK_NODATA)
MASK_MEANING = "0 clear, 1 cloud, 2 thin cloud, 3 shadow, 255 nodata"
SPLIT_STREAM = 3  # random stream of the block-to-split draw: np.random.default_rng([seed, 3])
# Default of ``max_tiles``: above the SEN12MS-CR-TS "all" region (53 ROIs, about 15,600
# patches of 256 px), so a region of the dataset's scale passes.
DEFAULT_MAX_TILES = 20000
MASK_CHUNK_PX = 1 << 22  # pixels of a mask read at a time by check_mask_file
GB = 1e9


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
    max_tiles: int = DEFAULT_MAX_TILES

    def windows(self, width: int, height: int, where: str = "") -> dict[str, Window]:
        """The tile windows of a ``width`` x ``height`` px region grid; a grid of more than
        ``max_tiles`` tiles is refused (ConfigError naming ``<where>.max_tiles``) before any
        window is made."""
        check_tile_count(width, height, self.tile_size, self.overlap, self.max_tiles, where)
        return tile_windows(width, height, self.tile_size, self.overlap)

    def splits(self, tiles: Mapping[str, Window]) -> dict[str, str]:
        return block_splits(
            tiles, block=self.block, val_fraction=self.val_fraction,
            test_fraction=self.test_fraction, seed=self.seed,
        )  # fmt: skip


def _starts(n: int, size: int, step: int) -> int:
    """How many tiles of ``size`` px, ``step`` px apart, cover ``n`` px (see tile_windows)."""
    if n < size:
        return 0
    full = (n - size) // step + 1
    return full + (1 if (full - 1) * step + size < n else 0)


def tile_count(width: int, height: int, size: int, overlap: int) -> int:
    """The number of tiles :func:`tile_windows` makes, computed without making them."""
    if overlap >= size:
        raise ConfigError(f"overlap ({overlap}) must be smaller than tile_size ({size})")
    step = size - overlap
    return _starts(int(width), size, step) * _starts(int(height), size, step)


def check_tile_count(
    width: int, height: int, size: int, overlap: int, max_tiles: int, where: str = ""
) -> int:
    """The tile count of a region grid; above ``max_tiles`` a ConfigError names the region
    (``where``, e.g. ``regions.<name>.folder``), the count and the key."""
    n = tile_count(width, height, size, overlap)
    if n > max_tiles:
        key = f"{where}.max_tiles" if where else "max_tiles"
        region = where.rsplit(".", 1)[0] if where.count(".") >= 2 else (where or "region")
        raise ConfigError(
            f"{region}: the region grid of {width} x {height} px makes {n} tiles of "
            f"{size} px, above {key} ({max_tiles}); check the extent and resolution of the "
            f"region, or raise {key} if it is meant to be this large"
        )
    return n


def physical_memory() -> int | None:
    """Bytes of memory of this machine (None where the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def check_memory(need: float, max_gb: float, key: str, what: str, region: str) -> None:
    """Refuse (ConfigError naming ``region`` and ``key``) work whose arrays would take
    ``need`` bytes, above ``max_gb`` GB or above this machine's memory, before allocating."""
    have = physical_memory()
    limit, why = max_gb * GB, f"{key} ({max_gb:g})"
    if have is not None and have < limit:
        limit, why = have, f"this machine's {have / GB:.1f} GB of memory (and {key} {max_gb:g})"
    if need > limit:
        raise ConfigError(
            f"{region}: {what} would need about {need / GB:.1f} GB of memory, above {why}; "
            f"make the region or its tiles smaller, or raise {key}"
        )


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


def bad_mask_values(values: np.ndarray, nodata: float | None = None) -> list[float]:
    """Up to five distinct values of a cloud mask, in its own dtype, that are no mask class:
    neither one of :data:`MASK_VALUES` nor the file's ``nodata``.  A float mask may hold only
    those integral values (0.6 is not rounded to a class; NaN only as its nodata)."""
    if values.dtype.kind == "b":
        return []
    if values.dtype.kind not in "uif":
        raise TypeError(f"cloud mask of dtype {values.dtype}")
    wide = values.astype(np.float64, copy=False)
    ok = np.zeros(values.shape, dtype=bool)
    for c in MASK_VALUES:
        ok |= wide == c
    if nodata is not None:
        ok |= np.isnan(wide) if math.isnan(nodata) else wide == nodata
    if ok.all():
        return []
    return np.unique(values[~ok])[:5].tolist()


def mask_nodata(nodata: float | None) -> float:
    """The nodata a mask file is read with: its own when that is no class (an int16 mask's
    -1, say), else :data:`MASK_NODATA` (a file calling 0 nodata still means clear by it)."""
    if nodata is None or nodata in (CLEAR, CLOUD, THIN_CLOUD, SHADOW):
        return MASK_NODATA
    return nodata


def check_mask_file(path: str | os.PathLike[str], where: str = "") -> tuple[float, str]:
    """Check every value of a cloud mask file in its own dtype, a block of rows at a time,
    before anything casts it to uint8 (an int16 -1 would become 0, clear, without a word).

    Returns the nodata the mask is to be read with (:func:`mask_nodata`) and the dtype to warp
    it in (uint8 for a uint8 mask, else float32: the warp casts to its working dtype before
    it tests for nodata); raises InputDataError naming the file and the offending values.
    """
    at = f" ({where})" if where else ""
    with open_raster(path, "cloud mask") as src:
        dtype = np.dtype(src.dtypes[0])
        nodata = src.nodata
        if dtype.kind not in "uifb":
            raise InputDataError(
                f"{path}{at}: cloud mask of {dtype} pixels; masks hold integer classes "
                f"({MASK_MEANING})"
            )
        rows = max(1, MASK_CHUNK_PX // max(1, src.width))
        bad: list[float] = []
        for r0 in range(0, src.height, rows):
            win = Window(0, r0, src.width, min(rows, src.height - r0))
            try:
                block = src.read(1, window=win)
            except RasterioError as exc:
                raise InputDataError(
                    f"{path}{at}: cannot read the cloud mask ({exc}); truncated or corrupt?"
                ) from exc
            bad = sorted(set(bad) | set(bad_mask_values(block, nodata)), key=_sort_key)[:5]
            if len(bad) == 5:
                break
    if bad:
        raise InputDataError(f"{path}{at}: {mask_values_problem(dtype, bad, nodata)}")
    return mask_nodata(nodata), "uint8" if dtype == np.uint8 else "float32"


def mask_values_problem(dtype: np.dtype | str, bad: Sequence[float], nodata: float | None) -> str:
    """What is wrong with a mask holding ``bad`` values (:func:`bad_mask_values`)."""
    shown = ", ".join(f"{v:g}" for v in bad)
    said = f" or its nodata {nodata:g}" if mask_nodata(nodata) != MASK_NODATA else ""
    return (
        f"cloud mask ({dtype}) holds values [{shown}] that are no class ({MASK_MEANING})"
        f"{said}; recode the mask: its values are never rounded or clipped into classes"
    )


def _sort_key(v: float) -> tuple[bool, float]:
    return (math.isnan(v), 0.0 if math.isnan(v) else v)


def mask_from_probability(prob: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    """Cloud mask classes from a probability map: cloud at or above ``threshold``."""
    mask = np.where(prob >= threshold, CLOUD, CLEAR).astype(np.uint8)
    mask[~valid] = MASK_NODATA
    return mask


# Sentinel-1 tiles: the two polarisations in dB, NaN where no backscatter.
S1_TAGS = {"UNITS": "dB", "POLARISATIONS": "VV,VH"}


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
    s1: np.ndarray | None = None,
    tags: Mapping[str, Any] | None = None,
    s1_tags: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write one tile and date (image, and mask/probability/Sentinel-1 if given); return
    their paths.  ``s1``: (2, H, W) VV, VH backscatter in dB, NaN where none."""
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
    if s1 is not None:
        out["s1"] = write_s1(dest, tile, iso, grid, s1, {**tags, **(s1_tags or {})})
    return out


def write_s1(
    dest: Path, tile: str, iso: str, grid: Grid, s1: np.ndarray, tags: Mapping[str, Any]
) -> str:
    """Write one tile's Sentinel-1 of one date (``<date>_S1.tif``: (2, H, W) VV, VH in dB,
    NaN where none); return its path."""
    path = str(dest / tile / f"{iso}_S1.tif")
    base = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height)
    prof = geotiff_profile(**base, count=2, dtype="float32", nodata=float("nan"))
    stags = {"DATE": iso, **tags, **S1_TAGS}
    write_raster(path, s1.astype(np.float32), prof, band_names=S1_BANDS, tags=stags)
    return path
