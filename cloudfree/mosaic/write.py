"""Writing one mosaic and its side layers from its contributions, window by window.

Every mosaic ``<stem>.tif`` comes with four side layers on the same grid:

- ``<stem>_count.tif`` (uint16): persistence count, valid contributions per pixel;
- ``<stem>_source.tif`` (uint16): 1-based index of the chosen source tile (0 = none), the
  names in the ``SOURCES`` tag (JSON list);
- ``<stem>_date.tif`` (uint32): chosen date as YYYYMMDD (0 = none);
- ``<stem>_quality.tif`` (uint8): worst quality class among the contributions (the
  :data:`cloudfree.infer.region.QUALITY` classes; 0 = none, 255 = unknown).

:func:`write_mosaic` streams the output grid window by window (memory stays flat), merging
the contributions that overlap each window (:mod:`cloudfree.mosaic.merge`, in the data's own
dtype when every contribution is already on the output grid and the rule picks per band),
and turns the results into Cloud-Optimized GeoTIFFs (``cog``) or writes tiled compressed
GeoTIFFs in one pass (``gtiff``).

A COG layer is written once, uncompressed, into a temporary GeoTIFF, gets its overviews
there (:func:`overview_factors`: halving while the mosaic is larger than one 256 px COG
block in either dimension, so a mosaic of at most 256 x 256 px has none), and is compressed
by one copy into the COG layout that reuses them (:func:`to_cog`).  Every output goes under
a temporary name; the side layers are moved into place first and the mosaic last, so a
killed job never leaves a mosaic without its side layers.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.windows import Window

from cloudfree.bands import NODATA, S2_L1C_BANDS
from cloudfree.io import atomic_path, tag_text
from cloudfree.mosaic.merge import Accumulator, NativeAccumulator, to_dtype
from cloudfree.mosaic.read import (
    Contribution,
    OpenContribution,
    open_contributions,
    open_input,
    resampling_method,
)
from cloudfree.mosaic.rules import rule_of
from cloudfree.mosaic.settings import check_setting
from cloudfree.progress import Progress
from cloudfree.tiles.grid import Grid

SIDE_LAYERS: dict[str, tuple[str, int | None]] = {
    "count": ("uint16", None),
    "source": ("uint16", 0),
    "date": ("uint32", 0),
    "quality": ("uint8", 0),
}
# GDAL's creation option of the compression level, per driver, where there is one.
LEVEL_OPTIONS = {"deflate": ("level", "zlevel"), "zstd": ("level", "zstd_level")}
# Tile size of the COGs, and the size above which they get overviews.
COG_BLOCK = 256


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
    """The template of a contribution: its bands, dtype, nodata and tags."""
    with open_input(path) as src:
        tags = {k: v for k, v in src.tags().items() if k not in ("AREA_OR_POINT", "TILE")}
        return Template(src.count, src.dtypes[0], src.nodata, tuple(src.descriptions), tags)


def side_paths(dest: Path) -> dict[str, Path]:
    """``{layer: path}`` of a mosaic's side layers."""
    return {name: dest.with_name(f"{dest.stem}_{name}.tif") for name in SIDE_LAYERS}


def compression_options(compress: str, level: int | None, driver: str = "COG") -> dict[str, str]:
    """``driver``'s creation options for ``mosaic.compress`` and ``mosaic.compress_level``
    (the predictor as the COG driver picks it: ``YES``, resolved per dtype for GTiff)."""
    check_setting("compress", compress)
    opts = {"compress": compress.upper()}
    if compress != "none":
        opts["predictor"] = "YES"
    if level is not None and compress in LEVEL_OPTIONS:
        cog_key, gtiff_key = LEVEL_OPTIONS[compress]
        opts[cog_key if driver == "COG" else gtiff_key] = str(level)
    return opts


def overview_factors(width: int, height: int, block: int = COG_BLOCK) -> list[int]:
    """Overview decimation factors while the level above is larger than one ``block`` in
    either dimension: none for a mosaic of at most one block, ``[2]`` up to two blocks."""
    factors, f = [], 2
    while max(width, height) / (f // 2) > block:
        factors.append(f)
        f *= 2
    return factors


def cog_options(compress: str, num_threads: int | str, level: int | None) -> dict[str, str]:
    """Creation options of :func:`to_cog` (``level``: compression level)."""
    return {
        "driver": "COG", "blocksize": str(COG_BLOCK), "BIGTIFF": "IF_SAFER",
        "OVERVIEWS": "FORCE_USE_EXISTING", "NUM_THREADS": str(num_threads),
        **compression_options(compress, level),
    }  # fmt: skip


def to_cog(src: Path, dest: Path, compress: str, num_threads: int | str, level: int | None) -> None:
    """Compress ``src`` into the COG ``dest`` in one copy that takes over ``src``'s
    overviews as they are (none when it has none); ``dest`` is the caller's temporary name."""
    rasterio.shutil.copy(src, dest, **cog_options(compress, num_threads, level))


def _finish(jobs: Sequence[Future[None]]) -> None:
    """Wait for every job (none still writes when the temporaries are removed), then raise
    the first failure."""
    wait(jobs)
    for job in jobs:
        job.result()


def window_count(grid: Grid, block: int) -> int:
    """The number of ``block`` px windows a mosaic on ``grid`` is built in."""
    return -(-grid.width // block) * -(-grid.height // block)


def _windows(grid: Grid, block: int) -> Iterator[Window]:
    for r in range(0, grid.height, block):
        for c in range(0, grid.width, block):
            yield Window(c, r, min(block, grid.width - c), min(block, grid.height - r))


def write_mosaic(
    contributions: Sequence[Contribution],
    dest: Path,
    *,
    rule: str,
    grid: Grid,
    sources: Sequence[str],
    resampling: str,
    compress: str,
    level: int | None,
    fmt: str,
    block: int,
    template: Template | None = None,
    tags: Mapping[str, Any] | None = None,
    num_threads: int | str = 1,
    cache_mb: int = 64,
    progress: Progress | None = None,
) -> Path:
    """Write ``dest`` and its side layers (COGs) from ``contributions`` in order.

    Reflectances are warped with ``resampling``, quality layers with nearest neighbour.
    The output is built ``block`` x ``block`` pixels at a time into uncompressed temporary
    GeoTIFFs with overviews (average for values, nearest for side layers; none for a mosaic
    of at most one 256 px block), each then compressed (``compress`` at ``level``) by one
    copy into a COG under a temporary name.  ``fmt="gtiff"`` instead writes tiled,
    compressed GeoTIFFs without overviews under their temporary names directly, window by
    window (one pass, no copy).  Either way the side layers are moved into place first, the
    mosaic last.  ``num_threads`` (or ``"ALL_CPUS"``) threads read contributions, compress,
    and write the five COGs concurrently.  GDAL's block cache is capped at ``cache_mb`` so
    memory does not grow with the mosaic size.  ``template`` (default: the first
    contribution's) gives bands, dtype, nodata and tags.  ``progress`` is stepped once per
    window.  With no contribution (or none with data) every pixel is nodata and the count
    is 0.
    """
    spec = rule_of(rule)
    check_setting("format", fmt)
    compression_options(compress, level)
    method = resampling_method(resampling)
    if block % 16:
        raise ValueError(f"block must be a multiple of 16, got {block}")
    tpl = template or (template_of(contributions[0].path) if contributions else Template())
    dest = Path(dest)
    meta = {
        **tpl.tags, **(tags or {}), "MOSAIC_RULE": rule,
        "MOSAIC_CONTRIBUTIONS": str(len(contributions)), "SOURCES": json.dumps(list(sources)),
    }  # fmt: skip
    dest.parent.mkdir(parents=True, exist_ok=True)
    workers = (os.cpu_count() or 1) if str(num_threads).upper() == "ALL_CPUS" else int(num_threads)
    targets = {"value": dest} | side_paths(dest)
    with (
        rasterio.Env(GDAL_CACHEMAX=int(cache_mb) * 2**20),
        # hidden, beside the outputs: same file system, and no product of a folder listing
        tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.stem}.tmp-") as tmp,
        ThreadPoolExecutor(max(1, workers)) as pool,
        # the mosaic's temporary name is entered first, so it is renamed last
        contextlib.ExitStack() as stack,
    ):
        final = {n: stack.enter_context(atomic_path(p)) for n, p in targets.items()}
        readers = open_contributions(contributions, grid, method, tpl.count)
        try:
            aligned = all(r.reader.aligned for r in readers)
            exact = not spec.stacked and (resampling == "nearest" or aligned)
            dtype = np.dtype(tpl.dtype)
            native = (
                spec.per_band_pick
                and dtype.kind in "ui"
                and tpl.nodata is not None
                and float(tpl.nodata).is_integer()
                and np.iinfo(dtype).min <= tpl.nodata <= np.iinfo(dtype).max
                and all(r.reader.aligned and r.reader.dtype == dtype
                        and r.reader.nodata == tpl.nodata for r in readers)
            )  # fmt: skip
            common = (rule, grid, tpl, meta, block, exact, pool, workers, native)
            if fmt == "gtiff":
                compression = compression_options(compress, level, "GTiff")
                compression |= {"num_threads": str(num_threads)}
                _merge_windows(readers, final, *common, compression, progress)
                return dest
            files = {n: Path(tmp) / f"{n}.tif" for n in targets}
            _merge_windows(readers, files, *common, None, progress)
            # the mosaic's copy, the longest, starts first; the side layers fill other threads
            _finish([
                pool.submit(to_cog, files[n], final[n], compress, num_threads, level)
                for n in targets
            ])  # fmt: skip
        finally:
            for r in readers:
                r.close()
    return dest


def _merge_windows(
    readers: list[OpenContribution],
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
    progress: Progress | None = None,
) -> None:
    """Merge window by window into the uncompressed temporary ``files`` with overviews.

    ``native``: every contribution is on the output grid in the output dtype and the rule
    picks values, so windows are merged in that dtype (:class:`NativeAccumulator`).
    ``compression`` (creation options): write compressed GeoTIFFs without overviews.
    ``progress`` is stepped after each window."""
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
    how = (dtype, tpl.nodata) if native else None
    try:
        windows = list(_windows(grid, block))
        for k, win in enumerate(windows):
            shape = (tpl.count, win.height, win.width)
            acc: Accumulator | NativeAccumulator = (
                NativeAccumulator(rule, shape, dtype, tpl.nodata)
                if native
                else Accumulator(rule, shape)
            )
            todo = [r for r in readers if r.reader.overlaps(win)]
            # Read a few contributions at once (GDAL and numpy release the GIL), add in order.
            step = max(1, 2 * workers)
            for i in range(0, len(todo), step):
                chunk = todo[i : i + step]
                if workers > 1 and len(chunk) > 1:
                    parts = list(pool.map(lambda r, w=win: r.read(w, how), chunk))
                else:
                    parts = [r.read(win, how) for r in chunk]
                for r, (values, quality) in zip(chunk, parts, strict=True):
                    c = r.contribution
                    acc.add(values, source=c.source, date=c.date, quality=quality, score=c.score)
            merged = acc.result()
            value = merged.value if native else to_dtype(merged.value, dtype, tpl.nodata, exact)
            outs["value"].write(value, window=win)
            for name in SIDE_LAYERS:
                outs[name].write(getattr(merged, name)[None], window=win)
            # Keep open only the tiles the next window needs too (its left neighbour's
            # blocks are then decoded once): open files stay few whatever the region size.
            following = windows[k + 1] if k + 1 < len(windows) else None
            for r in todo:
                if following is None or not r.reader.overlaps(following):
                    r.close()
            if progress is not None:
                progress.step()
        for i, name in enumerate(tpl.descriptions, start=1):
            if name:
                outs["value"].set_band_description(i, name)
        factors = [] if compression is not None else overview_factors(grid.width, grid.height)
        for name, ds in outs.items():
            if name != "value":
                ds.set_band_description(1, name)
            ds.update_tags(**tag_text(meta))
            if factors:
                kind = Resampling.average if name == "value" else Resampling.nearest
                ds.build_overviews(factors, kind)
    finally:
        for ds in outs.values():
            ds.close()
