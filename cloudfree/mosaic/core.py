"""Merge per-tile GeoTIFFs into region mosaics (Cloud-Optimized GeoTIFFs) with side layers.

Every mosaic ``<stem>.tif`` comes with four side layers on the same grid:

- ``<stem>_count.tif`` (uint16): persistence count, valid contributions per pixel;
- ``<stem>_source.tif`` (uint16): 1-based index of the chosen source tile (0 = none), the
  names in the ``SOURCES`` tag (JSON list);
- ``<stem>_date.tif`` (uint32): chosen date as YYYYMMDD (0 = none);
- ``<stem>_quality.tif`` (uint8): worst quality class among the contributions (the
  :data:`cloudfree.infer.region.QUALITY` classes; 0 = none, 255 = unknown).

Persistence rules (:data:`RULES`): ``first``/``last`` take the first/last contribution in
order (per band), ``mean``/``median``/``max``/``min`` per band; for ``max``/``min`` the source
and date are those of the chosen first band, for ``mean``/``median`` of the contribution
closest to the result in the first band.  Score rules pick whole pixels: ``best_quality``
prefers observed over reconstructed pixels, then the contribution with the best base score
(least cloudy source; for composites also the date closest to the target);
``most_persistent`` (change maps) the highest value of the first band (cosine similarity).
Ties go to the earlier contribution.

The kernel (:class:`Accumulator`, :func:`combine`) works on float arrays with NaN;
:class:`NativeAccumulator` gives the same results for the picking rules (``first``,
``last``, ``max``, ``min``) in the data's own integer dtype and nodata, which :func:`mosaic`
uses when every contribution is already on the output grid.  :func:`mosaic` streams the
output grid window by window (memory stays flat), warping each contribution that overlaps a
window (a direct windowed read when its grid is aligned with the output's), and turns the
results into COGs with overviews.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling, calculate_default_transform, transform_bounds
from rasterio.windows import Window

from cloudfree.bands import NODATA, S2_L1C_BANDS
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import atomic_path
from cloudfree.tiles.grid import Grid

RULES: tuple[str, ...] = (
    "first", "last", "mean", "median", "max", "min", "best_quality", "most_persistent",
)  # fmt: skip
STACK_RULES = ("mean", "median")
RESAMPLING: dict[str, Resampling] = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "cubic": Resampling.cubic,
    "cubic_spline": Resampling.cubic_spline,
    "lanczos": Resampling.lanczos,
    "average": Resampling.average,
}
SIDE_LAYERS: dict[str, tuple[str, int | None]] = {
    "count": ("uint16", None),
    "source": ("uint16", 0),
    "date": ("uint32", 0),
    "quality": ("uint8", 0),
}
OBSERVED, QUALITY_UNKNOWN = 1, 255
# Products of the inference stage: file name pattern (group "key") and its default rule.
PRODUCTS: dict[str, re.Pattern[str]] = {
    "reflectance": re.compile(r"^(?P<key>\d{4}-\d{2}-\d{2})\.tif$"),
    "embedding": re.compile(r"^(?P<key>\d{4}-\d{2}-\d{2})_embedding\.tif$"),
    "change": re.compile(r"^(?P<key>\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2})_change\.tif$"),
}
SUFFIX = {"reflectance": "", "embedding": "_embedding", "change": "_change"}


def check_rule(rule: str, key: str = "mosaic.rule") -> None:
    if rule not in RULES:
        raise ConfigError(f"{key}: unknown rule {rule!r}; known rules: {', '.join(RULES)}")


def resampling_method(name: str) -> Resampling:
    try:
        return RESAMPLING[name]
    except KeyError:
        raise ConfigError(
            f"mosaic.resampling: unknown {name!r}; known: {', '.join(RESAMPLING)}"
        ) from None


def date_code(date: str | None) -> int:
    """``YYYY-MM-DD`` (or the later date of ``D1_D2``) as the integer YYYYMMDD; 0 if none."""
    text = str(date or "").split("_")[-1]
    return int(text.replace("-", "")) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else 0


# --------------------------------------------------------------------------- kernel


class Merged(NamedTuple):
    value: np.ndarray  # (C, H, W) float32, NaN where nobody contributes (NativeAccumulator:
    # the mosaic's dtype, nodata there)
    count: np.ndarray  # (H, W) uint16
    source: np.ndarray  # (H, W) uint16, 1-based, 0 = none
    date: np.ndarray  # (H, W) uint32 YYYYMMDD, 0 = none
    quality: np.ndarray  # (H, W) uint8, worst class, 0 = none


class Accumulator:
    """Merges contributions one at a time under a persistence rule.

    Selection rules keep only the current choice (constant memory in the number of
    contributions); ``mean`` and ``median`` keep the window's stack.
    """

    def __init__(self, rule: str, shape: tuple[int, int, int]) -> None:
        check_rule(rule)
        self.rule = rule
        _, h, w = shape
        self.value = np.full(shape, np.nan, dtype=np.float32)
        self.count = np.zeros((h, w), dtype=np.uint16)
        self.source = np.zeros((h, w), dtype=np.uint16)
        self.date = np.zeros((h, w), dtype=np.uint32)
        self.quality = np.zeros((h, w), dtype=np.uint8)
        self.score = np.full((h, w), -np.inf, dtype=np.float32)
        self.stack: list[tuple[np.ndarray, int, int]] = []

    def add(
        self,
        values: np.ndarray,
        *,
        source: int,
        date: int,
        quality: np.ndarray | None = None,
        score: float = 0.0,
    ) -> None:
        """Add one contribution: (C, H, W) float values, NaN where it has none."""
        finite = np.isfinite(values)
        valid = finite.any(axis=0)
        if not valid.any():
            return
        q = (
            np.full(valid.shape, QUALITY_UNKNOWN, np.uint8)
            if quality is None
            else np.where(quality == 0, QUALITY_UNKNOWN, quality).astype(np.uint8)
        )
        np.maximum(self.quality, np.where(valid, q, 0).astype(np.uint8), out=self.quality)
        first_time = self.count == 0
        self.count += valid
        rule = self.rule
        if rule in STACK_RULES:
            self.stack.append((values, source, date))
            return
        if rule == "first":
            take = valid & first_time
            fill = finite & np.isnan(self.value)
            self.value[fill] = values[fill]
        elif rule == "last":
            take = valid
            self.value[finite] = values[finite]
        elif rule in ("max", "min"):
            b0, cur = values[0], self.value[0]
            better = b0 > cur if rule == "max" else b0 < cur
            take = np.isfinite(b0) & (np.isnan(cur) | better)
            op = np.fmax if rule == "max" else np.fmin
            op(self.value, values, out=self.value)
        else:
            if rule == "best_quality":
                pixel = np.where(q == OBSERVED, 2.0, 1.0).astype(np.float32) + np.float32(score)
            else:  # most_persistent: highest first band (cosine similarity)
                pixel = values[0]
            take = valid & np.isfinite(pixel) & (pixel > self.score)
            take |= valid & first_time & ~np.isfinite(self.score)
            self.score = np.where(take, pixel, self.score)
            self.value = np.where(take[None], values, self.value)
        self.source[take] = source
        self.date[take] = date

    def result(self) -> Merged:
        if self.rule in STACK_RULES and self.stack:
            stack = np.stack([s for s, _, _ in self.stack])
            finite = np.isfinite(stack)
            if self.rule == "mean":
                n = finite.sum(axis=0)
                total = np.where(finite, stack, 0).sum(axis=0, dtype=np.float64)
                value = np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
                    value = np.nanmedian(stack, axis=0).astype(np.float32)
            dist = np.abs(stack[:, 0] - value[0][None])
            dist = np.where(np.isfinite(dist), dist, np.inf)
            idx = np.argmin(dist, axis=0)
            has = np.isfinite(dist).any(axis=0)
            sources = np.array([s for _, s, _ in self.stack], dtype=np.uint16)
            dates = np.array([d for _, _, d in self.stack], dtype=np.uint32)
            self.value = value
            self.source = np.where(has, sources[idx], 0).astype(np.uint16)
            self.date = np.where(has, dates[idx], 0).astype(np.uint32)
        return Merged(self.value, self.count, self.source, self.date, self.quality)


NATIVE_RULES = ("first", "last", "max", "min")


class NativeAccumulator:
    """:class:`Accumulator` for ``first``/``last``/``max``/``min`` in the data's own dtype.

    Contributions are arrays of the mosaic's dtype with ``nodata`` where they have none (no
    float copy, no NaN); results equal the float accumulator's, already in the output dtype.
    """

    def __init__(self, rule: str, shape: tuple[int, int, int], dtype: Any, nodata: Any) -> None:
        if rule not in NATIVE_RULES:
            raise ValueError(f"rule {rule!r} needs the float accumulator")
        self.rule, self.nodata = rule, np.dtype(dtype).type(nodata)
        _, h, w = shape
        self.value = np.full(shape, self.nodata, dtype=dtype)
        self.count = np.zeros((h, w), dtype=np.uint16)
        self.source = np.zeros((h, w), dtype=np.uint16)
        self.date = np.zeros((h, w), dtype=np.uint32)
        self.quality = np.zeros((h, w), dtype=np.uint8)
        # max with nodata the dtype's minimum (uint16 with 0): nodata loses every comparison,
        # so a plain np.maximum is the NaN-ignoring max and no per-band masks are needed.
        self.plain_max = rule == "max" and self.nodata == np.iinfo(dtype).min
        # per band: nothing contributed yet
        self.empty = np.ones((0, 0, 0) if self.plain_max else shape, dtype=bool)

    def add(
        self,
        values: np.ndarray,
        *,
        source: int,
        date: int,
        quality: np.ndarray | None = None,
        score: float = 0.0,
    ) -> None:
        """Add one contribution: (C, H, W) values of the dtype, ``nodata`` where none."""
        if self.plain_max:
            valid = values.max(axis=0) > self.nodata
            finite = None
        else:
            finite = values != self.nodata
            valid = finite.any(axis=0)
        if not valid.any():
            return
        if quality is None:
            q = np.where(valid, QUALITY_UNKNOWN, 0).astype(np.uint8)
        else:
            q = np.where(quality == 0, QUALITY_UNKNOWN, quality).astype(np.uint8, copy=False)
            q[~valid] = 0
        np.maximum(self.quality, q, out=self.quality)
        rule = self.rule
        if finite is None:
            take = values[0] > self.value[0]
            self.count += valid
            np.maximum(self.value, values, out=self.value)
            self.source[take] = source
            self.date[take] = date
            return
        if rule == "first":
            take = valid & (self.count == 0)
            put = finite & self.empty
        elif rule == "last":
            take, put = valid, finite
        else:
            better = values > self.value if rule == "max" else values < self.value
            put = finite & (self.empty | better)
            take = put[0]
        self.count += valid
        np.copyto(self.value, values, where=put)
        self.empty &= ~finite
        self.source[take] = source
        self.date[take] = date

    def result(self) -> Merged:
        return Merged(self.value, self.count, self.source, self.date, self.quality)


def combine(
    stack: np.ndarray,
    rule: str,
    *,
    dates: Sequence[int] | None = None,
    quality: np.ndarray | None = None,
    scores: Sequence[float] | None = None,
) -> Merged:
    """Merge (N, C, H, W) contributions (NaN = none) in stack order; sources are 1..N.

    ``quality`` (N, H, W) uint8 classes and ``scores`` (N,) base scores feed the side
    layer and the score rules.
    """
    check_rule(rule)
    stack = np.asarray(stack, dtype=np.float32)
    if stack.ndim != 4:
        raise ValueError(f"stack must be (N, C, H, W), got shape {stack.shape}")
    acc = Accumulator(rule, stack.shape[1:])
    for i in range(stack.shape[0]):
        acc.add(
            stack[i],
            source=i + 1,
            date=int(dates[i]) if dates is not None else 0,
            quality=None if quality is None else quality[i],
            score=float(scores[i]) if scores is not None else 0.0,
        )
    return acc.result()


def to_dtype(
    merged: np.ndarray, dtype: np.dtype, nodata: float | None, exact: bool = False
) -> np.ndarray:
    """Round and clip to ``dtype``; NaN becomes nodata (0 without one for integers).

    Valid integer values that would round onto the nodata value are moved one step away,
    so a contributed pixel never reads as nodata.  ``exact``: the valid values are already
    values of ``dtype`` other than nodata (picked, not computed), so only NaN is replaced.
    """
    if exact and dtype.kind != "f":
        return np.where(np.isnan(merged), 0 if nodata is None else nodata, merged).astype(dtype)
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


# --------------------------------------------------------------------------- grid


def target_grid(
    files: Sequence[Path], crs: str | None = None, resolution: float | None = None
) -> Grid:
    """The union of the files' bounds in ``crs`` (default: the first file's) at
    ``resolution`` (default: the first file's pixel size, converted when the CRS differs)."""
    if not files:
        raise InputDataError("no rasters to build a mosaic grid from")
    infos = []
    for path in files:
        with _open(path) as src:
            infos.append((src.crs, src.bounds, src.res, src.width, src.height))
    try:
        dst_crs = CRS.from_user_input(crs) if crs is not None else CRS.from_user_input(infos[0][0])
    except Exception as exc:
        raise ConfigError(f"mosaic.crs: invalid CRS {crs!r}: {exc}") from exc
    boxes = []
    for path, (src_crs, b, _, _, _) in zip(files, infos, strict=True):
        if src_crs is None:
            raise InputDataError(f"{path}: no CRS")
        same = CRS.from_user_input(src_crs) == dst_crs
        boxes.append(tuple(b) if same else transform_bounds(src_crs, dst_crs, *b, densify_pts=21))
    left, bottom = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, top = max(b[2] for b in boxes), max(b[3] for b in boxes)
    src_crs, b, res, w, h = infos[0]
    if resolution is not None:
        xres = yres = float(resolution)
    elif CRS.from_user_input(src_crs) == dst_crs:
        xres, yres = (abs(r) for r in res)
    else:
        tr, _, _ = calculate_default_transform(src_crs, dst_crs, w, h, *b)
        xres, yres = abs(tr.a), abs(tr.e)
    if not (xres > 0 and yres > 0):
        raise ConfigError(f"mosaic.resolution must be positive, got {resolution!r}")
    width = max(1, math.ceil((right - left) / xres - 1e-6))
    height = max(1, math.ceil((top - bottom) / yres - 1e-6))
    return Grid(dst_crs, Affine(xres, 0.0, left, 0.0, -yres, top), width, height)


def _open(path: Path) -> Any:
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InputDataError(f"cannot read raster {path}: {exc}") from exc


# --------------------------------------------------------------------------- readers


@dataclass
class Contribution:
    """One raster that contributes to a mosaic, with its side information."""

    path: Path
    source: int  # 1-based index into the mosaic's source names
    date: int = 0  # YYYYMMDD
    quality: list[Path] = field(default_factory=list)  # worst of these is its quality
    score: float = 0.0  # base score of the score rules (higher is better)


class _Reader:
    """Reads one raster in output-grid windows: directly when aligned, else warped.

    The file is opened at its first window and kept open until :meth:`close`, which the
    merge calls as soon as the next window does not need it (so blocks shared by two
    neighbouring windows are decoded once, from GDAL's capped block cache, while the
    number of open files, each with its own buffers, does not grow with the region).
    """

    def __init__(self, path: Path, grid: Grid, resampling: Resampling, nodata: Any = None):
        self.path, self.grid, self.resampling = path, grid, resampling
        self._src: Any = None
        with _open(path) as src:
            self.nodata = src.nodata if nodata is None else nodata
            self.count, self.height, self.width = src.count, src.height, src.width
            self.dtype = np.dtype(src.dtypes[0]) if len(set(src.dtypes)) == 1 else None
            if src.crs is None:
                raise InputDataError(f"{path}: no CRS")
            same_crs = CRS.from_user_input(src.crs) == grid.crs
            t, g = src.transform, grid.transform
            col, row = (t.c - g.c) / g.a, (t.f - g.f) / g.e
            self.aligned = (
                same_crs
                and math.isclose(t.a, g.a, rel_tol=1e-9)
                and math.isclose(t.e, g.e, rel_tol=1e-9)
                and t.b == 0
                and t.d == 0
                and abs(col - round(col)) < 1e-6
                and abs(row - round(row)) < 1e-6
            )
            if self.aligned:
                self.offset = (round(row), round(col))
                self.box = (self.offset[0], self.offset[1], src.height, src.width)
            else:
                left, bottom, right, top = transform_bounds(src.crs, grid.crs, *src.bounds)
                inv = ~grid.transform
                xa, ya = inv @ (left, top)
                xb, yb = inv @ (right, bottom)
                r0, c0 = math.floor(min(ya, yb)) - 2, math.floor(min(xa, xb)) - 2
                r1, c1 = math.ceil(max(ya, yb)) + 2, math.ceil(max(xa, xb)) + 2
                self.box = (r0, c0, r1 - r0, c1 - c0)

    def overlaps(self, win: Window) -> bool:
        r0, c0, h, w = self.box
        return (
            r0 < win.row_off + win.height
            and win.row_off < r0 + h
            and c0 < win.col_off + win.width
            and win.col_off < c0 + w
        )

    def read_native(self, win: Window, dtype: np.dtype, nodata: Any) -> np.ndarray:
        """(count, h, w) of the window in the file's own ``dtype`` (aligned grids only),
        ``nodata`` where this raster does not reach."""
        r0, c0 = self.offset
        rs, re_ = max(win.row_off, r0), min(win.row_off + win.height, r0 + self.height)
        cs, ce = max(win.col_off, c0), min(win.col_off + win.width, c0 + self.width)
        if rs >= re_ or cs >= ce:
            return np.full((self.count, win.height, win.width), nodata, dtype=dtype)
        data = self._dataset().read(window=Window(cs - c0, rs - r0, ce - cs, re_ - rs))
        if data.shape[1:] == (win.height, win.width):
            return data
        out = np.full((self.count, win.height, win.width), nodata, dtype=dtype)
        out[:, rs - win.row_off : re_ - win.row_off, cs - win.col_off : ce - win.col_off] = data
        return out

    def read(self, win: Window) -> np.ndarray:
        """(count, h, w) float32 of the window, NaN where this raster has no data."""
        out = np.full((self.count, win.height, win.width), np.nan, dtype=np.float32)
        if self.aligned:
            r0, c0 = self.offset
            rs, re_ = max(win.row_off, r0), min(win.row_off + win.height, r0 + self.height)
            cs, ce = max(win.col_off, c0), min(win.col_off + win.width, c0 + self.width)
            if rs >= re_ or cs >= ce:
                return out
            data = self._dataset().read(window=Window(cs - c0, rs - r0, ce - cs, re_ - rs))
            part = data.astype(np.float32)
            if self.nodata is not None and not math.isnan(self.nodata):
                part[data == self.nodata] = np.nan
            out[:, rs - win.row_off : re_ - win.row_off, cs - win.col_off : ce - win.col_off] = part
            return out
        g = self.grid
        with WarpedVRT(
            self._dataset(), crs=g.crs, transform=g.window(win).transform, width=win.width,
            height=win.height, resampling=self.resampling, src_nodata=self.nodata,
            nodata=self.nodata,
        ) as vrt:  # fmt: skip
            data = vrt.read(masked=True)
        out[:] = data.astype(np.float32).filled(np.nan)
        return out

    def _dataset(self) -> Any:
        if self._src is None:
            self._src = _open(self.path)
        return self._src

    def close(self) -> None:
        """Close the file (it is reopened if read again)."""
        if self._src is not None:
            self._src.close()
            self._src = None


def cloud_fraction(paths: Sequence[Path]) -> float:
    """Share of a quality raster's valid pixels that are reconstructed (worst of ``paths``)."""
    worst = None
    for path in paths:
        with _open(path) as src:
            h, w = src.height, src.width
            f = max(1, max(h, w) // 256)
            q = src.read(1, out_shape=(max(1, h // f), max(1, w // f)))
        worst = q if worst is None or worst.shape != q.shape else np.maximum(worst, q)
    if worst is None:
        return 0.0
    valid = worst > 0
    return float(((worst > OBSERVED) & valid).sum() / max(1, valid.sum()))


# --------------------------------------------------------------------------- writer


@dataclass
class Template:
    """Bands, dtype and nodata of a mosaic when no contribution says otherwise."""

    count: int = len(S2_L1C_BANDS)
    dtype: str = "uint16"
    nodata: float | None = NODATA
    descriptions: tuple[str | None, ...] = tuple(S2_L1C_BANDS)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_bands(cls, bands: Sequence[str] | None = None) -> Template:
        """The uint16 reflectance template of ``bands`` (default :data:`S2_L1C_BANDS`)."""
        names = tuple(bands) if bands else S2_L1C_BANDS
        return cls(count=len(names), descriptions=tuple(names))


def template_of(path: Path) -> Template:
    with _open(path) as src:
        tags = {k: v for k, v in src.tags().items() if k not in ("AREA_OR_POINT", "TILE")}
        return Template(src.count, src.dtypes[0], src.nodata, tuple(src.descriptions), tags)


def side_paths(dest: Path) -> dict[str, Path]:
    """``{layer: path}`` of a mosaic's side layers."""
    return {name: dest.with_name(f"{dest.stem}_{name}.tif") for name in SIDE_LAYERS}


def _windows(grid: Grid, block: int) -> Iterator[Window]:
    for r in range(0, grid.height, block):
        for c in range(0, grid.width, block):
            yield Window(c, r, min(block, grid.width - c), min(block, grid.height - r))


def _overview_factors(width: int, height: int, block: int = 256) -> list[int]:
    factors, f = [], 2
    while max(width, height) / (f // 2) > block:
        factors.append(f)
        f *= 2
    return factors


def mosaic(
    contributions: Sequence[Contribution],
    dest: Path,
    *,
    rule: str,
    grid: Grid,
    sources: Sequence[str],
    resampling: str = "bilinear",
    template: Template | None = None,
    tags: Mapping[str, Any] | None = None,
    compress: str = "deflate",
    block: int = 512,
    num_threads: int | str = 1,
    cache_mb: int = 64,
    level: int | None = None,
    fmt: str = "cog",
) -> Path:
    """Write ``dest`` and its side layers (COGs) from ``contributions`` in order.

    Reflectances are warped with ``resampling``, quality layers with nearest neighbour.
    The output is built ``block`` x ``block`` pixels at a time into uncompressed temporary
    GeoTIFFs with overviews (average for values, nearest for side layers), then copied to
    COGs (``compress``) and moved into place.  ``fmt="gtiff"`` instead writes tiled,
    compressed GeoTIFFs without overviews directly, window by window (one pass, no copy).
    ``num_threads`` (or ``"ALL_CPUS"``) threads read contributions, compress, and write
    the five COGs concurrently.  GDAL's block cache is capped at ``cache_mb`` so memory does
    not grow with the mosaic size.  With no contribution (or none with data) every pixel is
    nodata and the count is 0.
    """
    check_rule(rule)
    check_format(fmt)
    _compression(compress, level)
    method = resampling_method(resampling)
    if block % 16:
        raise ValueError(f"block must be a multiple of 16, got {block}")
    tpl = template or (template_of(contributions[0].path) if contributions else Template())
    dest = Path(dest)
    meta = {
        **tpl.tags, **(tags or {}), "MOSAIC_RULE": rule,
        "MOSAIC_CONTRIBUTIONS": str(len(contributions)), "SOURCES": json.dumps(list(sources)),
    }  # fmt: skip
    if fmt == "gtiff":  # written in place of the temporary files, then renamed
        dest.parent.mkdir(parents=True, exist_ok=True)
    parent = dest.parent if dest.parent.exists() else None
    workers = (os.cpu_count() or 1) if str(num_threads).upper() == "ALL_CPUS" else int(num_threads)
    with (
        rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 2**20),
        tempfile.TemporaryDirectory(dir=parent) as tmp,
        ThreadPoolExecutor(max(1, workers)) as pool,
    ):
        files = {n: Path(tmp) / f"{n}.tif" for n in ("value", *SIDE_LAYERS)}
        readers: list[tuple[Contribution, _Reader, list[_Reader]]] = []
        try:
            for contrib in contributions:
                reader = _Reader(contrib.path, grid, method)
                readers.append((contrib, reader, []))
                if reader.count != tpl.count:
                    raise InputDataError(
                        f"{contrib.path}: {reader.count} bands, expected {tpl.count}"
                    )
                for q in contrib.quality:
                    readers[-1][2].append(_Reader(q, grid, Resampling.nearest, nodata=0))
            exact = rule not in STACK_RULES and (
                resampling == "nearest" or all(r.aligned for _, r, _ in readers)
            )
            dtype = np.dtype(tpl.dtype)
            native = (
                rule in NATIVE_RULES
                and dtype.kind in "ui"
                and tpl.nodata is not None
                and float(tpl.nodata).is_integer()
                and np.iinfo(dtype).min <= tpl.nodata <= np.iinfo(dtype).max
                and all(r.aligned and r.dtype == dtype and r.nodata == tpl.nodata
                        for _, r, _ in readers)
            )  # fmt: skip
            targets = {"value": dest} | side_paths(dest)
            if fmt == "gtiff":
                with contextlib.ExitStack() as stack:
                    files = {n: stack.enter_context(atomic_path(p)) for n, p in targets.items()}
                    _merge_windows(
                        readers, files, rule, grid, tpl, meta, block, exact, pool, workers,
                        native, compression=_compression(compress, level, "GTiff") | {
                            "num_threads": str(num_threads)},
                    )  # fmt: skip
                # ExitStack renames the side layers first: a mosaic never lacks its layers.
                return dest
            _merge_windows(
                readers, files, rule, grid, tpl, meta, block, exact, pool, workers, native
            )
            jobs = [
                pool.submit(_to_cog, files[n], p, compress, num_threads, level)
                for n, p in targets.items()
            ]
            for job in jobs:
                job.result()
        finally:
            for _, reader, quality in readers:
                reader.close()
                for qr in quality:
                    qr.close()
    return dest


def _read_contribution(
    item: tuple[Contribution, _Reader, list[_Reader]], win: Window, native: Template | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A contribution's values in ``win`` (float with NaN, or in ``native``'s dtype with its
    nodata) and its worst quality class there (or None)."""
    _, reader, quality = item
    q = None
    for qr in quality:
        if qr.aligned and qr.dtype is not None and qr.dtype.kind == "u":
            qi = qr.read_native(win, qr.dtype, 0)[0].astype(np.uint8, copy=False)
        else:
            qi = np.nan_to_num(qr.read(win)[0], nan=0).astype(np.uint8)
        q = qi if q is None else np.maximum(q, qi)
    if native is not None:
        return reader.read_native(win, np.dtype(native.dtype), native.nodata), q
    return reader.read(win), q


def _merge_windows(
    readers: list[tuple[Contribution, _Reader, list[_Reader]]],
    files: dict[str, Path],
    rule: str,
    grid: Grid,
    tpl: Template,
    meta: Mapping[str, Any],
    block: int,
    exact: bool,
    pool: ThreadPoolExecutor,
    workers: int,
    native: bool = False,
    compression: Mapping[str, str] | None = None,
) -> None:
    """Merge window by window into the uncompressed temporary ``files`` with overviews.

    ``native``: every contribution is on the output grid in the output dtype and the rule
    picks values, so windows are merged in that dtype (:class:`NativeAccumulator`).
    ``compression`` (creation options): write compressed GeoTIFFs without overviews."""
    dtype = np.dtype(tpl.dtype)
    # Compressed files: each window covers whole TIFF tiles (a tile cut by two windows would
    # be compressed twice, its first copy left as dead space in the file).
    tile = 256 if compression is None or block % 256 == 0 else block
    base = {
        "driver": "GTiff", "crs": grid.crs, "transform": grid.transform, "width": grid.width,
        "height": grid.height, "tiled": True, "blockxsize": tile, "blockysize": tile,
        "compress": "none", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip

    def profile(dt: str, **kwds: Any) -> dict[str, Any]:
        opts = dict(compression or {})
        if opts.get("predictor") == "YES":  # as the COG driver: 3 for floats, else 2
            opts["predictor"] = "3" if np.dtype(dt).kind == "f" else "2"
        return {**base, **opts, "dtype": dt, **kwds}

    profiles = {
        # band interleaved: overviews band by band, memory independent of the bands
        "value": profile(dtype.name, count=tpl.count, nodata=tpl.nodata, interleave="band"),
        **{n: profile(dt, count=1, nodata=nd) for n, (dt, nd) in SIDE_LAYERS.items()},
    }
    outs = {n: rasterio.open(files[n], "w", **profiles[n]) for n in files}
    how = tpl if native else None
    try:
        windows = list(_windows(grid, block))
        for k, win in enumerate(windows):
            shape = (tpl.count, win.height, win.width)
            acc: Accumulator | NativeAccumulator = (
                NativeAccumulator(rule, shape, dtype, tpl.nodata)
                if native
                else Accumulator(rule, shape)
            )
            todo = [r for r in readers if r[1].overlaps(win)]
            # Read a few contributions at once (GDAL and numpy release the GIL), add in order.
            step = max(1, 2 * workers)
            for i in range(0, len(todo), step):
                chunk = todo[i : i + step]
                if workers > 1 and len(chunk) > 1:
                    parts = list(pool.map(lambda r, w=win: _read_contribution(r, w, how), chunk))
                else:
                    parts = [_read_contribution(r, win, how) for r in chunk]
                for (contrib, _, _), (values, quality) in zip(chunk, parts, strict=True):
                    acc.add(
                        values, source=contrib.source, date=contrib.date, quality=quality,
                        score=contrib.score,
                    )  # fmt: skip
            merged = acc.result()
            value = merged.value if native else to_dtype(merged.value, dtype, tpl.nodata, exact)
            outs["value"].write(value, window=win)
            for name in SIDE_LAYERS:
                outs[name].write(getattr(merged, name)[None], window=win)
            # Keep open only the tiles the next window needs too (its left neighbour's
            # blocks are then decoded once): open files stay few whatever the region size.
            following = windows[k + 1] if k + 1 < len(windows) else None
            for _, reader, quality in todo:
                if following is None or not reader.overlaps(following):
                    for r in (reader, *quality):
                        r.close()
        for i, name in enumerate(tpl.descriptions, start=1):
            if name:
                outs["value"].set_band_description(i, name)
        factors = [] if compression is not None else _overview_factors(grid.width, grid.height)
        for name, ds in outs.items():
            if name != "value":
                ds.set_band_description(1, name)
            ds.update_tags(**{k: str(v) for k, v in meta.items()})
            if factors:
                kind = Resampling.average if name == "value" else Resampling.nearest
                ds.build_overviews(factors, kind)
    finally:
        for ds in outs.values():
            ds.close()


def _to_cog(
    src: Path, dest: Path, compress: str, num_threads: int | str, level: int | None = None
) -> None:
    """Copy to a COG, reusing the source's overviews (``level``: compression level)."""
    opts = {
        "driver": "COG", "blocksize": 256, "BIGTIFF": "IF_SAFER", "NUM_THREADS": str(num_threads),
        **_compression(compress, level),
    }  # fmt: skip
    with atomic_path(dest) as tmp:
        rasterio.shutil.copy(src, tmp, **opts)


FORMATS = ("cog", "gtiff")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"mosaic.format: {fmt!r} is not one of {', '.join(FORMATS)}")


def _compression(compress: str, level: int | None, driver: str = "COG") -> dict[str, str]:
    """``driver``'s creation options for ``mosaic.compress`` and ``mosaic.compress_level``
    (the predictor as the COG driver picks it: ``YES``, resolved per dtype for GTiff)."""
    if compress not in ("deflate", "zstd", "lzw", "none"):
        raise ConfigError(f"mosaic.compress: {compress!r} is not deflate, zstd, lzw or none")
    opts = {"compress": compress.upper()}
    if compress != "none":
        opts["predictor"] = "YES"
    if level is not None and compress in ("deflate", "zstd"):
        key = "level" if driver == "COG" else {"deflate": "zlevel", "zstd": "zstd_level"}[compress]
        opts[key] = str(level)
    return opts


# --------------------------------------------------------------------------- regions


def product_files(tiles_dir: Path) -> dict[str, dict[str, list[Path]]]:
    """``{product: {key: [<tile>/<file> in tile-name order]}}`` of an inference tree."""
    found: dict[str, dict[str, list[Path]]] = {p: {} for p in PRODUCTS}
    for tile_dir in sorted(p for p in Path(tiles_dir).iterdir() if p.is_dir()):
        for file in sorted(tile_dir.iterdir()):
            if not file.is_file():
                continue
            for product, pattern in PRODUCTS.items():
                m = pattern.match(file.name)
                if m:
                    found[product].setdefault(m["key"], []).append(file)
    return {p: dict(sorted(v.items())) for p, v in found.items()}


def dated_files(tiles_dir: Path) -> dict[str, list[Path]]:
    """``{date: [<tile>/<date>.tif in tile-name order]}`` for a tree of per-tile folders."""
    return product_files(tiles_dir)["reflectance"]


def quality_of(path: Path, key: str) -> list[Path]:
    """Existing quality rasters of a product file (both dates for a change map)."""
    dates = key.split("_")
    return [q for d in dates if (q := path.with_name(f"{d}_quality.tif")).exists()]


def contributions_of(
    paths: Sequence[Path], key: str, sources: Sequence[str], *, rule: str
) -> list[Contribution]:
    """Contributions of one mosaic: source = index of the tile folder in ``sources``."""
    out = []
    for path in paths:
        quality = quality_of(path, key)
        score = 1.0 - cloud_fraction(quality) if rule == "best_quality" and quality else 0.0
        out.append(
            Contribution(
                path, sources.index(path.parent.name) + 1, date_code(key), quality, 0.5 * score
            )
        )
    return out


def mosaic_date(
    paths: Sequence[Path],
    dest: Path,
    *,
    rule: str,
    crs: str | None = None,
    resolution: float | None = None,
    resampling: str = "bilinear",
    grid: Grid | None = None,
    compress: str = "deflate",
    block: int = 512,
    level: int | None = None,
    num_threads: int | str = 1,
    fmt: str = "cog",
) -> Path:
    """Mosaic one date's per-tile files (``<tile>/<key>...tif``, in order) into ``dest``.

    The tiles' folder names are the sources; each file's ``<date>_quality.tif`` beside it
    (when present) gives its quality.  The grid is ``grid`` or the union of the files.
    """
    check_rule(rule)
    resampling_method(resampling)
    paths = [Path(p) for p in paths]
    if grid is None:
        grid = target_grid(paths, crs, resolution)
    sources = sorted({p.parent.name for p in paths})
    contribs = [c for p in paths for c in contributions_of([p], _key_of(p), sources, rule=rule)]
    return mosaic(
        contribs, Path(dest), rule=rule, grid=grid, sources=sources, resampling=resampling,
        compress=compress, block=block, level=level, num_threads=num_threads, fmt=fmt,
    )  # fmt: skip


def _key_of(path: Path) -> str:
    """The date (or date pair) of a product file, from its name or else its DATE tag."""
    for pattern in PRODUCTS.values():
        if m := pattern.match(path.name):
            return m["key"]
    with _open(path) as src:
        return str(src.tags().get("DATE", ""))


def mosaic_region(
    tiles_dir: Path,
    dest_dir: Path,
    *,
    rule: str,
    crs: str | None = None,
    resolution: float | None = None,
    resampling: str = "bilinear",
    rules: Mapping[str, str] | None = None,
    dates: Sequence[str] | None = None,
    compress: str = "deflate",
    composite: Mapping[str, Any] | None = None,
    block: int = 512,
    level: int | None = None,
    num_threads: int | str = 1,
    bands: Sequence[str] | None = None,
    fmt: str = "cog",
) -> list[Path]:
    """Mosaic every product, date and pair of ``tiles_dir/<tile>/`` into ``dest_dir``.

    All mosaics of a region share one grid (the union of all its files).  ``rule`` is for
    reflectances; ``rules`` may set ``embedding`` and ``change`` (default ``mean`` and
    ``most_persistent``).  ``dates`` (e.g. from the manifest) adds an empty mosaic (count
    0) for a date no tile has.  ``composite`` (``{"enabled", ...}``, see
    :func:`cloudfree.mosaic.composite.composite_region`) adds ``composite.tif``.  ``dest_dir`` is
    built in a temporary sibling and moved into place.  ``bands`` names the bands of an
    empty mosaic when no tile has a reflectance file (default :data:`S2_L1C_BANDS`; otherwise
    the tiles' own band count and descriptions are kept).  ``fmt``: ``cog`` (with overviews)
    or ``gtiff`` (tiled, compressed, no overviews).  Returns the reflectance mosaics.
    """
    check_rule(rule)
    check_format(fmt)
    rules = {"reflectance": rule, "embedding": "mean", "change": "most_persistent", **(rules or {})}
    for product, r in rules.items():
        check_rule(r, f"mosaic.{product}_rule" if product != "reflectance" else "mosaic.rule")
    resampling_method(resampling)
    tiles_dir = Path(tiles_dir)
    if not tiles_dir.is_dir():
        raise InputDataError(f"tiles directory {tiles_dir} does not exist")
    found = product_files(tiles_dir)
    for date in dates or ():
        found["reflectance"].setdefault(str(date), [])
    found["reflectance"] = dict(sorted(found["reflectance"].items()))
    every = [p for by_key in found.values() for paths in by_key.values() for p in paths]
    grid = target_grid(every, crs, resolution) if every else _empty_grid(crs, resolution)
    refl_template = next(
        (template_of(ps[0]) for ps in found["reflectance"].values() if ps),
        Template.of_bands(bands),
    )
    sources = sorted({p.parent.name for p in every})
    dest_dir = Path(dest_dir)
    written = []
    with atomic_path(dest_dir) as tmp:
        tmp.mkdir()
        for product, by_key in found.items():
            for key, paths in by_key.items():
                r = rules[product]
                dest = tmp / f"{key}{SUFFIX[product]}.tif"
                tpl = refl_template if not paths else template_of(paths[0])
                tpl = replace(tpl, tags={**tpl.tags, "DATE": key.split("_")[-1]})
                mosaic(
                    contributions_of(paths, key, sources, rule=r), dest, rule=r, grid=grid,
                    sources=sources, resampling="nearest" if product == "change" else resampling,
                    template=tpl, compress=compress, block=block, level=level,
                    num_threads=num_threads, fmt=fmt,
                )  # fmt: skip
                if product == "reflectance":
                    written.append(dest_dir / dest.name)
        if composite and composite.get("enabled"):
            from cloudfree.mosaic.composite import composite_region

            composite_region(
                found["reflectance"], tmp / "composite.tif", grid=grid, sources=sources,
                template=refl_template, resampling=resampling, compress=compress,
                block=block, level=level, num_threads=num_threads, fmt=fmt,
                **{k: v for k, v in composite.items() if k != "enabled"},
            )  # fmt: skip
    return written


def _empty_grid(crs: str | None, resolution: float | None) -> Grid:
    """A 1 x 1 pixel grid for a region without any tile (the mosaic is all nodata)."""
    try:
        dst = CRS.from_user_input(crs or "EPSG:4326")
    except Exception as exc:
        raise ConfigError(f"mosaic.crs: invalid CRS {crs!r}: {exc}") from exc
    res = float(resolution or (1e-4 if dst.is_geographic else 10.0))
    return Grid(dst, Affine(res, 0.0, 0.0, 0.0, -res, 0.0), 1, 1)
