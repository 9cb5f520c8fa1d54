"""Report figures: cloud cover, training curves, method comparison, error against difficulty,
example reconstructions and mosaic quicklooks.

Every function draws one matplotlib :class:`~matplotlib.figure.Figure` (no pyplot, no
global state) and writes it atomically as a PNG to ``path``; they all return ``None``.
RGB quicklooks use B04/B03/B02 (band indices 3, 2, 1 of the 13 Sentinel-2 L1C bands, or the
bands of those names) with a 2-98 percentile stretch shared by the images that are compared
(one row, one figure); data without these three bands (e.g. a single index such as NDVI) is
shown as grey levels of its first band.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .errors import InputDataError
from .io import atomic_path
from .packing import TileSeries

RGB = (3, 2, 1)  # B04, B03, B02 in the 13-band L1C order
RGB_NAMES = ("B04", "B03", "B02")
GAP_COLOUR = (1.0, 0.0, 1.0)  # evaluation gap: hidden from the methods, truth known
CLOUD_COLOUR = (0.0, 0.0, 0.0)  # real cloud, shadow or nodata in the input
NAN_COLOUR = (0.5, 0.5, 0.5)  # no value in a prediction / truth
_DATE_TIF = re.compile(r"^(\d{4}-\d{2}-\d{2})\.tif$")


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _message(ax: Axes, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _regions(frame: pd.DataFrame) -> str:
    if "region" not in frame:
        return ""
    names = [str(r) for r in pd.unique(frame["region"].dropna())]
    return ", ".join(names)


# --- 1. method bars -------------------------------------------------------------------


def method_bars(
    summary: pd.DataFrame,
    path: str | os.PathLike[str],
    metric: str = "mae",
    part: str = "masked",
) -> None:
    """Bars of ``<metric>_<part>`` per method (one row of ``summary`` per method).

    Error bars span ``<metric>_<part>_ci_low`` .. ``_ci_high`` (the 95 % bootstrap interval
    over tiles) when both columns exist; otherwise plain bars.  Non-finite values (NaN for
    an empty pixel set, inf PSNR of an exact copy) get no bar and an "n/a" / "inf" label.
    """
    col = f"{metric}_{part}"
    if col not in summary:
        raise KeyError(f"summary has no column {col!r} (columns: {list(summary.columns)})")
    methods = [str(m) for m in summary["method"]]
    values = pd.to_numeric(summary[col], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(values)
    x = np.arange(len(methods))
    fig = Figure(figsize=(1.0 * len(methods) + 2.5, 3.6))
    ax = fig.subplots()
    heights = np.where(finite, values, 0.0)
    bars = ax.bar(x, heights, width=0.6, color="tab:blue")
    low_col, high_col = f"{col}_ci_low", f"{col}_ci_high"
    has_ci = low_col in summary and high_col in summary
    if has_ci:
        low = pd.to_numeric(summary[low_col], errors="coerce").to_numpy(dtype=float)
        high = pd.to_numeric(summary[high_col], errors="coerce").to_numpy(dtype=float)
        ok = finite & np.isfinite(low) & np.isfinite(high)
        if ok.any():
            err = np.vstack(
                [np.clip(values[ok] - low[ok], 0, None), np.clip(high[ok] - values[ok], 0, None)]
            )
            ax.errorbar(x[ok], values[ok], yerr=err, fmt="none", ecolor="black", capsize=4)
    for i, bar in enumerate(bars):
        if not finite[i]:
            label = "inf" if np.isinf(values[i]) else "n/a"
            ax.annotate(
                label,
                (bar.get_x() + bar.get_width() / 2, 0),
                ha="center",
                va="bottom",
                xytext=(0, 2),
                textcoords="offset points",
                fontsize=8,
            )
    ax.set_xticks(x, methods)
    ax.set_xlabel("method")
    ax.set_ylabel(f"{metric.upper()} ({part} pixels)")
    title = f"{metric.upper()} on {part} pixels"
    if region := _regions(summary):
        title += f", {region}"
    if has_ci:
        title += "\n(error bars: 95 % bootstrap interval over tiles)"
    ax.set_title(title, fontsize=10)
    _save(fig, path)


# --- 2. error against difficulty --------------------------------------------------------

_DIFFICULTY = {
    "cloud_fraction": "cloud fraction of the input date",
    "gap_days": "mean days from a masked pixel to its nearest available date",
}


def _binned(x: np.ndarray, y: np.ndarray, bins: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Centres and means of y in equal-width bins of x (empty bins dropped)."""
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.array([lo]), np.array([float(y.mean())])
    edges = np.linspace(lo, hi, bins + 1)
    which = np.clip(np.digitize(x, edges[1:-1]), 0, bins - 1)
    centres, means = [], []
    for b in range(bins):
        sel = which == b
        if sel.any():
            centres.append(float(x[sel].mean()))
            means.append(float(y[sel].mean()))
    return np.asarray(centres), np.asarray(means)


def error_vs_difficulty(
    table: pd.DataFrame, path: str | os.PathLike[str], metric: str = "mae_masked"
) -> None:
    """``metric`` against ``cloud_fraction`` (left) and ``gap_days`` (right), per method.

    ``table`` is the per tile/date/method metrics table.  Points are single rows, lines
    the binned means (6 equal-width bins).  Rows with a non-finite metric or difficulty
    are left out; a panel whose column is missing (or the whole table when ``metric`` is)
    says so instead of failing.
    """
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2, squeeze=True)
    methods = [str(m) for m in pd.unique(table["method"])] if "method" in table else []
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    for ax, (column, label) in zip(axes, _DIFFICULTY.items(), strict=True):
        if metric not in table:
            _message(ax, f"column {metric!r} missing from the metrics table")
            continue
        if column not in table:
            _message(ax, f"column {column!r} missing from the metrics table")
            continue
        drawn = False
        for method in methods:
            rows = table[table["method"].astype(str) == method]
            x = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float)
            y = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(x) & np.isfinite(y)
            if not ok.any():
                continue
            c = colours[method]
            ax.scatter(x[ok], y[ok], s=10, alpha=0.35, color=c, linewidths=0)
            bx, by = _binned(x[ok], y[ok])
            ax.plot(bx, by, "o-", color=c, lw=1.5, ms=4, label=method)
            drawn = True
        if not drawn:
            _message(ax, f"no finite {metric} / {column} values")
            continue
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    title = f"{metric} against difficulty"
    if region := _regions(table):
        title += f", {region}"
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


# --- RGB helpers ------------------------------------------------------------------------


def rgb_bands(bands: Sequence[str | None] | None, count: int) -> tuple[tuple[int, ...], str]:
    """0-based indices of the bands shown as red, green, blue and a label for them.

    B04/B03/B02 by name when ``bands`` has them, by position for 13 unnamed bands, else the
    first band three times (grey levels).
    """
    names = [str(b) if b else "" for b in bands or ()]
    if all(n in names for n in RGB_NAMES):
        return tuple(names.index(n) for n in RGB_NAMES), "/".join(RGB_NAMES)
    if not any(names) and count == 13:
        return RGB, "/".join(RGB_NAMES)
    return (0, 0, 0), (names[0] if names and names[0] else "band 1")


def _rgb(image: np.ndarray, index: Sequence[int] = RGB) -> np.ndarray:
    """(C, H, W) reflectance -> (H, W, 3) float of the bands ``index`` (B04/B03/B02)."""
    return np.moveaxis(np.asarray(image, dtype=np.float32)[list(index)], 0, -1)


def _limits(rgb: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """2-98 percentile of the finite values of (H, W, 3) ``rgb`` at pixels ``where``."""
    values = rgb if where is None else rgb[where]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 0.3
    lo, hi = np.percentile(values, [2, 98])
    if not hi > lo:
        hi = lo + 1e-3
    return float(lo), float(hi)


def _stretch(rgb: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, 3) -> displayable [0, 1] RGB; pixels with a non-finite band are grey."""
    out = np.clip((rgb - lo) / (hi - lo), 0, 1)
    out[~np.isfinite(rgb).all(axis=-1)] = NAN_COLOUR
    return out


def _show(ax: Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


# --- 3. example reconstructions ---------------------------------------------------------


def example_reconstructions(
    tile: TileSeries,
    predictions: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    dates: int = 3,
    bands: Sequence[str] | None = None,
) -> None:
    """Input, each method's prediction and the truth for a few dates of one tile.

    Rows are the ``dates`` dates with the most masked pixels (``tile.gap & tile.clear``),
    in time order.  Columns: the input as the methods saw it (evaluation gaps magenta,
    real clouds, shadows and nodata black), one column per entry of ``predictions``
    (``{method: (T, C, H, W) reflectance}``, in the mapping's order), and the truth (the
    tile's real observation).  One 2-98 percentile stretch per row, from the truth's clear
    pixels.  A tile without masked pixels gives a figure that says so.  ``bands`` (the
    packed file's band names) selects the displayed bands (:func:`rgb_bands`).
    """
    refl = tile.reflectance()
    shape = refl.shape
    index, label = rgb_bands(bands, shape[1])
    for name, pred in predictions.items():
        if np.shape(pred) != shape:
            raise ValueError(
                f"prediction {name!r} of tile {tile.tile} has shape {np.shape(pred)}, "
                f"expected {shape}"
            )
    clear = tile.clear
    gap = tile.gap if tile.gap is not None else np.zeros_like(clear)
    masked = (gap & clear).sum(axis=(1, 2))
    candidates = np.flatnonzero(masked > 0)
    ncols = len(predictions) + 2
    if candidates.size == 0 or dates < 1:
        fig = Figure(figsize=(5, 2))
        _message(fig.subplots(), f"tile {tile.tile}: no date with masked pixels")
        _save(fig, path)
        return
    order = candidates[np.argsort(-masked[candidates], kind="stable")][:dates]
    chosen = np.sort(order)
    h, w = shape[2:]
    panel = 2.2
    fig = Figure(figsize=(panel * ncols, panel * len(chosen) * h / w + 0.6))
    axes = np.atleast_2d(fig.subplots(len(chosen), ncols, squeeze=False))
    for row, t in enumerate(chosen):
        truth = _rgb(refl[t], index)
        lo, hi = _limits(truth, clear[t])
        date = tile.dates[t]
        frac = masked[t] / (h * w)
        shown = _stretch(truth, lo, hi)
        shown[~clear[t]] = CLOUD_COLOUR
        shown[gap[t] & tile.valid[t]] = GAP_COLOUR
        _show(axes[row, 0], shown, f"{date}\ninput ({frac:.0%} masked)")
        for col, (name, pred) in enumerate(predictions.items(), start=1):
            _show(axes[row, col], _stretch(_rgb(pred[t], index), lo, hi), f"{date}\n{name}")
        _show(axes[row, -1], _stretch(truth, lo, hi), f"{date}\ntruth")
    fig.suptitle(
        f"Tile {tile.tile} ({tile.split}, {label}): magenta = evaluation gap, black = cloud/nodata",
        fontsize=9,
    )
    _save(fig, path)


# --- 4. mosaic quicklook ----------------------------------------------------------------


def _read_rgb(path: Path, max_size: int) -> tuple[np.ndarray, str]:
    """(H, W, 3) float values (DN) of B04/B03/B02 (:func:`rgb_bands`), nodata NaN,
    decimated; and the label of the bands shown."""
    import rasterio

    with rasterio.open(path) as src:
        index, label = rgb_bands(src.descriptions, src.count)
        scale = max(1, int(np.ceil(max(src.height, src.width) / max_size)))
        out_shape = (3, -(-src.height // scale), -(-src.width // scale))
        data = src.read([i + 1 for i in index], out_shape=out_shape, masked=True)
    rgb = np.ma.filled(data.astype(np.float32), np.nan)
    return np.moveaxis(rgb, 0, -1), label


def _read_count(path: Path, max_size: int) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        scale = max(1, int(np.ceil(max(src.height, src.width) / max_size)))
        out_shape = (-(-src.height // scale), -(-src.width // scale))
        return src.read(1, out_shape=out_shape)


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
    per pixel) when that file exists.  Rasters are read decimated to at most 512 pixels a
    side.  Raises :class:`InputDataError` when the folder has no date mosaic.
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
    max_size = 512
    read = [_read_rgb(f, max_size) for f in files]
    rgbs = [r for r, _ in read]
    label = read[0][1]
    counts = [
        _read_count(c, max_size) if (c := f.with_name(f"{f.stem}_count.tif")).exists() else None
        for f in files
    ]
    lo, hi = _limits(np.concatenate([r.reshape(-1, 3) for r in rgbs]))
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
        _show(ax_rgb, _stretch(rgb, lo, hi), file.stem)
        if count is None:
            _message(ax_count, "no count")
        else:
            image = ax_count.imshow(
                count, vmin=0, vmax=vmax, cmap="viridis", interpolation="nearest"
            )
            ax_count.set_title("count", fontsize=8)
            ax_count.set_xticks([])
            ax_count.set_yticks([])
    for j in range(len(files), nrows * per_row):
        axes[j // per_row, 2 * (j % per_row)].set_axis_off()
        axes[j // per_row, 2 * (j % per_row) + 1].set_axis_off()
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="tiles per pixel")
    fig.suptitle(f"Mosaics of {folder.name} ({label})", fontsize=10)
    _save(fig, path)


def coverage_heatmap(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Cloud (and thin cloud) fraction per tile (rows) and date (columns); with a ``class``
    column, clear dates are marked with a dot and unusable ones with a cross."""
    grid = table.pivot(index="tile", columns="date", values="cloud_fraction")
    fig = Figure(figsize=(max(4, 0.45 * grid.shape[1] + 2), 0.35 * grid.shape[0] + 1.5))
    ax = fig.subplots()
    im = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    title = f"Cloud cover, {table['region'].iloc[0]}"
    if "class" in table.columns:
        classes = table.pivot(index="tile", columns="date", values="class").reindex_like(grid)
        for cls, marker in (("clear", "o"), ("unusable", "x")):
            rows, cols = np.nonzero(classes.to_numpy() == cls)
            ax.scatter(cols, rows, marker=marker, s=12, c="darkorange")
        title += "\n(o clear, x unusable)"
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="cloud fraction")
    _save(fig, path)


def run_length_histogram(
    runs: pd.DataFrame, path: str | os.PathLike[str], region: str = ""
) -> None:
    """Runs of consecutive cloudy dates: per pixel (left) and per tile, non-clear (right)."""
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    for ax, column, title in (
        (axes[0], "count", "per pixel (not clear)"),
        (axes[1], "date_runs", "per tile (dates not clear)"),
    ):
        if column not in runs or runs[column].sum() == 0:
            _message(ax, "no cloudy runs")
            continue
        ax.bar(runs["run_length"], runs[column], color="steelblue")
        ax.set_xlabel("consecutive cloudy dates")
        ax.set_ylabel("runs")
        ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"Cloudy run lengths, {region or _regions(runs)}".rstrip(", "), fontsize=10)
    _save(fig, path)


def clear_dates_distribution(tiles: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Tiles by number of clear dates (left) and by longest gap between clear dates (right)."""
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    n_max = int(tiles["n_dates"].max()) if len(tiles) else 0
    counts = np.bincount(tiles["n_clear"].astype(int), minlength=n_max + 1)
    axes[0].bar(np.arange(len(counts)), counts, color="seagreen")
    axes[0].set_xlabel("clear dates per tile")
    axes[0].set_ylabel("tiles")
    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    gaps = tiles["longest_gap_days"].dropna()
    if gaps.empty:
        _message(axes[1], "no dates")
    else:
        axes[1].hist(gaps, bins=min(20, max(1, gaps.nunique())), color="indianred")
        axes[1].set_xlabel("longest gap without a clear date (days)")
        axes[1].set_ylabel("tiles")
    fig.suptitle(f"Clear dates, {_regions(tiles)}".rstrip(", "), fontsize=10)
    _save(fig, path)


def training_curve(history: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Training loss and validation MAE on masked pixels against the step."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot(history["step"], history["train_loss"], lw=0.8, label="train loss (L1)")
    val = history.dropna(subset=["val_mae_masked"])
    if not val.empty:
        ax.plot(val["step"], val["val_mae_masked"], "o-", label="val MAE (masked)")
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.legend()
    _save(fig, path)
