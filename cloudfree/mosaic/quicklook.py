"""Quicklook figure of a region's mosaics: RGB of a few dates beside their tile count.

Reads ``<date>.tif`` and ``<date>_count.tif`` of a mosaic folder (decimated); writes one PNG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import rasterio
from matplotlib.figure import Figure

from cloudfree.errors import InputDataError
from cloudfree.plotting import (
    panel_message,
    rgb_bands,
    save_figure,
    show_image,
    stretch,
    stretch_limits,
)

_DATE_TIF = re.compile(r"^(\d{4}-\d{2}-\d{2})\.tif$")
MAX_SIZE = 512  # pixels a side read from each raster


def _decimated(src: rasterio.DatasetReader) -> tuple[int, int]:
    """(height, width) of ``src`` read at an integer step that keeps both within MAX_SIZE."""
    scale = max(1, int(np.ceil(max(src.height, src.width) / MAX_SIZE)))
    return -(-src.height // scale), -(-src.width // scale)


def _read_rgb(path: Path) -> tuple[np.ndarray, str]:
    """(H, W, 3) float values (DN) of B04/B03/B02 (:func:`rgb_bands`), nodata NaN,
    decimated; and the label of the bands shown."""
    with rasterio.open(path) as src:
        index, label = rgb_bands(src.descriptions, src.count)
        data = src.read([i + 1 for i in index], out_shape=(3, *_decimated(src)), masked=True)
    rgb = np.ma.filled(data.astype(np.float32), np.nan)
    return np.moveaxis(rgb, 0, -1), label


def _read_count(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1, out_shape=_decimated(src))


def mosaic_quicklook(
    mosaic_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    max_dates: int = 6,
) -> None:
    """RGB quicklooks of a region's ``<date>.tif`` mosaics, each with its persistence count.

    Up to ``max_dates`` dates, evenly spread over the series, three per figure row; each
    date is a large RGB panel (B04/B03/B02 or grey levels of the first band, see
    :func:`rgb_bands`; one 2-98 percentile stretch for all dates;
    nodata grey) and beside it a small panel of ``<date>_count.tif`` (valid contributions
    per pixel) when that file exists.  Rasters are read decimated to at most :data:`MAX_SIZE`
    pixels a side.  Raises :class:`InputDataError` when the folder has no date mosaic.
    """
    folder = Path(mosaic_dir)
    if not folder.is_dir():
        raise InputDataError(f"mosaic folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and _DATE_TIF.match(p.name))
    if not files:
        raise InputDataError(f"{folder}: no <date>.tif mosaics to show")
    if len(files) > max_dates > 0:
        picks = np.unique(np.round(np.linspace(0, len(files) - 1, max_dates)).astype(int))
        files = [files[i] for i in picks]
    read = [_read_rgb(f) for f in files]
    rgbs = [r for r, _ in read]
    label = read[0][1]
    counts = [
        _read_count(c) if (c := f.with_name(f"{f.stem}_count.tif")).exists() else None
        for f in files
    ]
    lo, hi = stretch_limits(np.concatenate([r.reshape(-1, 3) for r in rgbs]))
    vmax = max([int(c.max()) for c in counts if c is not None and c.size] + [1])
    per_row = min(3, len(files))
    nrows = -(-len(files) // per_row)
    h, w = rgbs[0].shape[:2]
    fig = Figure(figsize=(4.2 * per_row, 3.2 * nrows * h / w + 0.6))
    axes = np.atleast_2d(
        fig.subplots(nrows, 2 * per_row, squeeze=False, width_ratios=[3, 1] * per_row)
    )
    image = None
    for i, (file, rgb, count) in enumerate(zip(files, rgbs, counts, strict=True)):
        ax_rgb, ax_count = (
            axes[i // per_row, 2 * (i % per_row)],
            axes[i // per_row, 2 * (i % per_row) + 1],
        )
        show_image(ax_rgb, stretch(rgb, lo, hi), file.stem)
        if count is None:
            panel_message(ax_count, "no count")
        else:
            image = show_image(ax_count, count, "count", vmin=0, vmax=vmax, cmap="viridis")
    for j in range(len(files), nrows * per_row):
        axes[j // per_row, 2 * (j % per_row)].set_axis_off()
        axes[j // per_row, 2 * (j % per_row) + 1].set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="tiles per pixel")
    fig.suptitle(f"Mosaics of {folder.name} ({label})", fontsize=10)
    save_figure(fig, path)
