"""Cloud statistics of a region, computed lazily with xarray + dask, one tile at a time.

Each tile's masks (and cloud probabilities, where the source has them) are opened as a
chunked ``(date, y, x)`` :class:`xarray.Dataset` whose blocks are windowed reads of all the
tile's dates over ``chunk x chunk`` pixels, made only when a block is needed.  Every block is
reduced at once to per-date class counts and a histogram of its cloudy runs, so peak memory
is a couple of ``(dates, chunk, chunk)`` blocks: it does not grow with the tile size beyond
one block nor with the number of tiles (``benchmarks/cloud_stats_memory.py``).

The per-date rows of a region's tiles are gathered by :class:`cloudfree.frames.FrameChunks`,
which joins them into a few frames as it goes: what a region keeps is a few numbers per
tile-date in columns, not a frame (or dict) per tile.

Reads the mask (and probability) GeoTIFFs a manifest lists; writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from rasterio.windows import Window

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.errors import InputDataError

CHUNK = 256
COUNTS: tuple[str, ...] = ("valid", "cloud", "thick_cloud", "thin_cloud", "shadow", "clear", "prob")


def _read_windows(
    paths: Sequence[str], row: int, col: int, h: int, w: int, dtype: str
) -> np.ndarray:
    """Band 1 of every file over one window, as a (len(paths), h, w) array."""
    out = np.empty((len(paths), h, w), dtype=dtype)
    for k, path in enumerate(paths):
        try:
            with rasterio.open(path) as src:
                if src.height < row + h or src.width < col + w:
                    raise InputDataError(
                        f"{path}: {src.height}x{src.width} px, smaller than the tile's other dates"
                    )
                out[k] = src.read(1, window=Window(col, row, w, h))
        except rasterio.errors.RasterioIOError as exc:
            raise InputDataError(f"cannot read raster {path}: {exc}") from exc
    return out


def lazy_stack(
    paths: Sequence[str], height: int, width: int, dtype: str, chunk: int = CHUNK
) -> da.Array:
    """A ``(len(paths), height, width)`` dask array of band 1 of each file, in blocks of
    ``(len(paths), chunk, chunk)`` read by window."""
    paths = [str(p) for p in paths]
    rows = []
    for r in range(0, height, chunk):
        line = []
        for c in range(0, width, chunk):
            h, w = min(chunk, height - r), min(chunk, width - c)
            part = dask.delayed(_read_windows, pure=True)(paths, r, c, h, w, dtype)
            line.append(da.from_delayed(part, shape=(len(paths), h, w), dtype=dtype))
        rows.append(line)
    return da.block(rows)


def tile_dataset(group: pd.DataFrame, chunk: int = CHUNK) -> xr.Dataset:
    """One tile's masks (and probabilities, if every date has one) as a lazy Dataset."""
    group = group.sort_values("date")
    first = group.iloc[0]
    height, width = int(first["height"]), int(first["width"])
    coords = {"date": pd.to_datetime(group["date"]).to_numpy()}
    stack = lazy_stack(list(group["mask"]), height, width, "uint8", chunk)
    data = {"mask": (("date", "y", "x"), stack)}
    if "probability" in group.columns:
        probs = group["probability"]
        if probs.notna().all() and (probs.astype(str) != "").all():
            stack = lazy_stack(list(probs), height, width, "float32", chunk)
            data["probability"] = (("date", "y", "x"), stack)
    return xr.Dataset(data, coords=coords)


def run_length_histogram(cloudy: np.ndarray, n_dates: int) -> np.ndarray:
    """Counts of runs of k consecutive True along axis 0 of a (T, ...) bool array, k = 0..T
    (``counts[0]`` is 0).  One pass over the dates, memory of one date."""
    t = cloudy.shape[0]
    flat = cloudy.reshape(t, -1)
    run = np.zeros(flat.shape[1], dtype=np.int32)
    hist = np.zeros(n_dates + 1, dtype=np.int64)
    for k in range(t + 1):
        cloudy_now = flat[k] if k < t else np.zeros(flat.shape[1], dtype=bool)
        hist += np.bincount(run[~cloudy_now], minlength=n_dates + 1)[: n_dates + 1]
        run = np.where(cloudy_now, run + 1, 0)
    hist[0] = 0
    return hist


def block_statistics(
    mask: np.ndarray, prob: np.ndarray | None, prob_threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-date counts (T, len(COUNTS)) of one (T, h, w) block and its cloudy-run histogram."""
    table = np.zeros((mask.shape[0], len(COUNTS)), dtype=np.int64)

    def count(selected: np.ndarray) -> np.ndarray:  # one boolean temporary at a time
        return np.count_nonzero(selected, axis=(1, 2))

    table[:, 0] = count(mask != MASK_NODATA)
    table[:, 2] = count(mask == CLOUD)
    table[:, 3] = count(mask == THIN_CLOUD)
    table[:, 1] = table[:, 2] + table[:, 3]
    table[:, 4] = count(mask == SHADOW)
    table[:, 5] = count(mask == CLEAR)
    if prob is not None:
        table[:, 6] = count((prob > prob_threshold) & (mask != MASK_NODATA))
    return table, run_length_histogram(mask != CLEAR, mask.shape[0])


def tile_statistics(ds: xr.Dataset, prob_threshold: float) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-date fractions of one tile and the histogram of its per-pixel cloudy runs.

    Fractions are of the valid pixels (``valid_fraction`` of all pixels); ``prob_fraction``
    is the share of valid pixels whose cloud probability exceeds ``prob_threshold`` (NaN
    without probabilities).  A pixel-date is cloudy when it is not clear (cloud, thin cloud,
    shadow or nodata).
    """
    masks = ds["mask"].data.to_delayed().ravel()
    probs = (
        ds["probability"].data.to_delayed().ravel() if "probability" in ds else [None] * len(masks)
    )
    parts = [
        dask.delayed(block_statistics)(m, p, prob_threshold)
        for m, p in zip(masks, probs, strict=True)
    ]
    results = dask.compute(*parts)
    counts = np.sum([r[0] for r in results], axis=0).astype(float)
    hist = np.sum([r[1] for r in results], axis=0)
    size = ds.sizes["y"] * ds.sizes["x"]
    n_valid = counts[:, 0]
    table = pd.DataFrame({"date": pd.DatetimeIndex(ds["date"].to_numpy()).strftime("%Y-%m-%d")})
    table["valid_fraction"] = n_valid / size
    with np.errstate(invalid="ignore", divide="ignore"):
        for k, name in enumerate(COUNTS[1:], start=1):
            table[f"{name}_fraction"] = np.where(n_valid > 0, counts[:, k] / n_valid, np.nan)
    if "probability" not in ds:
        table["prob_fraction"] = np.nan
    return table, hist


def longest_gap_days(dates: Sequence[str], clear: Sequence[bool]) -> float:
    """Longest interval in days without a clear date, the series' first and last dates
    counting as its bounds (the whole span when no date is clear)."""
    days = pd.to_datetime(pd.Series(list(dates))).to_numpy().astype("datetime64[D]")
    if len(days) == 0:
        return float("nan")
    anchors = np.concatenate([[days[0]], days[np.asarray(clear, dtype=bool)], [days[-1]]])
    return float(np.diff(anchors).astype(int).max(initial=0))


def longest_cloudy_run(clear: Sequence[bool]) -> int:
    """Most consecutive dates in a row that are not clear."""
    best = run = 0
    for ok in clear:
        run = 0 if ok else run + 1
        best = max(best, run)
    return best


def add_hist(a: np.ndarray | None, b: np.ndarray) -> np.ndarray:
    """Sum of two run-length histograms of different lengths (``a`` None: a copy of ``b``)."""
    if a is None:
        return b.copy()
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))) + np.pad(b, (0, n - len(b)))
