"""The inputs of a mosaic: its target grid, its contributions and their readers.

A contribution is one per-tile raster with its source (tile folder), date, quality rasters
(``<date>_quality.tif`` beside it) and base score.  :class:`Reader` reads a raster in
windows of the output grid: a direct windowed read when its grid is aligned with the
output's, else warped.  Reads rasters only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.mosaic.rules import OBSERVED, rule_of
from cloudfree.mosaic.settings import check_setting
from cloudfree.tiles.grid import Grid


def open_input(path: Path) -> Any:
    """Open a raster; an unreadable one raises InputDataError naming it."""
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InputDataError(f"cannot read raster {path}: {exc}") from exc


def resampling_method(name: str) -> Resampling:
    """The rasterio method of ``mosaic.resampling``."""
    check_setting("resampling", name)
    return Resampling[name]


def date_code(date: str | None) -> int:
    """``YYYY-MM-DD`` (or the later date of ``D1_D2``) as the integer YYYYMMDD; 0 if none."""
    text = str(date or "").split("_")[-1]
    return int(text.replace("-", "")) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else 0


def target_grid(files: Sequence[Path], crs: str | None, resolution: float | None) -> Grid:
    """The union of the files' bounds in ``crs`` (None: the first file's) at ``resolution``
    (None: the first file's pixel size, converted when the CRS differs)."""
    if not files:
        raise InputDataError("no rasters to build a mosaic grid from")
    infos = []
    for path in files:
        with open_input(path) as src:
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


def empty_grid(crs: str | None, resolution: float | None) -> Grid:
    """A 1 x 1 pixel grid for a region without any tile (the mosaic is all nodata)."""
    try:
        dst = CRS.from_user_input(crs or "EPSG:4326")
    except Exception as exc:
        raise ConfigError(f"mosaic.crs: invalid CRS {crs!r}: {exc}") from exc
    res = float(resolution or (1e-4 if dst.is_geographic else 10.0))
    return Grid(dst, Affine(res, 0.0, 0.0, 0.0, -res, 0.0), 1, 1)


@dataclass
class Contribution:
    """One raster that contributes to a mosaic, with its side information."""

    path: Path
    source: int  # 1-based index into the mosaic's source names
    date: int = 0  # YYYYMMDD
    quality: list[Path] = field(default_factory=list)  # worst of these is its quality
    score: float = 0.0  # base score of the score rules (higher is better)


def quality_of(path: Path, key: str) -> list[Path]:
    """Existing quality rasters of a product file (both dates for a change map)."""
    dates = key.split("_")
    return [q for d in dates if (q := path.with_name(f"{d}_quality.tif")).exists()]


def cloud_fraction(paths: Sequence[Path]) -> float:
    """Share of a quality raster's valid pixels that are reconstructed (worst of ``paths``)."""
    worst = None
    for path in paths:
        with open_input(path) as src:
            h, w = src.height, src.width
            f = max(1, max(h, w) // 256)
            q = src.read(1, out_shape=(max(1, h // f), max(1, w // f)))
        worst = q if worst is None or worst.shape != q.shape else np.maximum(worst, q)
    if worst is None:
        return 0.0
    valid = worst > 0
    return float(((worst > OBSERVED) & valid).sum() / max(1, valid.sum()))


def contributions_of(
    paths: Sequence[Path], key: str, sources: Sequence[str], *, rule: str
) -> list[Contribution]:
    """Contributions of one mosaic: source = index of the tile folder in ``sources``."""
    clear_score = rule_of(rule).clear_score
    out = []
    for path in paths:
        quality = quality_of(path, key)
        score = 1.0 - cloud_fraction(quality) if clear_score and quality else 0.0
        out.append(
            Contribution(
                path, sources.index(path.parent.name) + 1, date_code(key), quality, 0.5 * score
            )
        )
    return out


class Reader:
    """Reads one raster in output-grid windows: directly when aligned, else warped.

    The file is opened at its first window and kept open until :meth:`close`, which the
    merge calls as soon as the next window does not need it (so blocks shared by two
    neighbouring windows are decoded once, from GDAL's capped block cache, while the
    number of open files, each with its own buffers, does not grow with the region).
    """

    def __init__(self, path: Path, grid: Grid, resampling: Resampling, nodata: Any = None):
        self.path, self.grid, self.resampling = path, grid, resampling
        self._src: Any = None
        with open_input(path) as src:
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
            self._src = open_input(self.path)
        return self._src

    def close(self) -> None:
        """Close the file (it is reopened if read again)."""
        if self._src is not None:
            self._src.close()
            self._src = None


@dataclass
class OpenContribution:
    """A contribution with the readers of its values and of its quality rasters."""

    contribution: Contribution
    reader: Reader
    quality: list[Reader]

    def read(
        self, win: Window, native: tuple[np.dtype, Any] | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The values in ``win`` (float with NaN, or with ``native`` = (dtype, nodata) in
        that dtype with that nodata) and the worst quality class there (or None)."""
        q = None
        for qr in self.quality:
            if qr.aligned and qr.dtype is not None and qr.dtype.kind == "u":
                qi = qr.read_native(win, qr.dtype, 0)[0].astype(np.uint8, copy=False)
            else:
                qi = np.nan_to_num(qr.read(win)[0], nan=0).astype(np.uint8)
            q = qi if q is None else np.maximum(q, qi)
        if native is not None:
            return self.reader.read_native(win, *native), q
        return self.reader.read(win), q

    def close(self) -> None:
        for r in (self.reader, *self.quality):
            r.close()


def open_contributions(
    contributions: Sequence[Contribution], grid: Grid, resampling: Resampling, count: int
) -> list[OpenContribution]:
    """Readers of every contribution (values with ``resampling``, quality with nearest
    neighbour); a contribution without ``count`` bands raises InputDataError.  Files are
    opened at their first read."""
    out = []
    for contrib in contributions:
        reader = Reader(contrib.path, grid, resampling)
        if reader.count != count:
            raise InputDataError(f"{contrib.path}: {reader.count} bands, expected {count}")
        quality = [Reader(q, grid, Resampling.nearest, nodata=0) for q in contrib.quality]
        out.append(OpenContribution(contrib, reader, quality))
    return out
