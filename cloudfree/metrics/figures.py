"""Figures of the metrics stage: errors by method, error against input difficulty, example
reconstructions.

Reads the summary and table of :func:`cloudfree.metrics.region.region_metrics` or one tile with
its predictions; writes one PNG each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cloudfree.packed import TileSeries
from cloudfree.plotting import (
    panel_message,
    region_names,
    rgb_bands,
    rgb_composite,
    save_figure,
    show_image,
    stretch,
    stretch_limits,
    with_region,
)

GAP_COLOUR = (1.0, 0.0, 1.0)  # evaluation gap: hidden from the methods, truth known
CLOUD_COLOUR = (0.0, 0.0, 0.0)  # real cloud, shadow or nodata in the input
# The unit of each metric of cloudfree.metrics.kernels, for axis labels.
METRIC_UNITS = {"mae": "reflectance", "rmse": "reflectance", "psnr": "dB", "ssim": "unitless",
                "sam": "degrees"}  # fmt: skip


def metric_label(column: str) -> str:
    """An axis label for a metric column (``mae_masked`` -> ``MAE, masked pixels
    (reflectance)``); a column of no known metric as it is."""
    metric, _, part = column.partition("_")
    if metric not in METRIC_UNITS:
        return column
    where = f", {part.replace('_', ' ')} pixels" if part else ""
    return f"{metric.upper()}{where} ({METRIC_UNITS[metric]})"


def method_bars(
    summary: pd.DataFrame,
    path: str | os.PathLike[str],
    metric: str = "mae",
    part: str = "masked",
) -> None:
    """Bars of ``<metric>_<part>`` per method, one panel per evaluation set (the summary's
    ``evaluation`` column; one panel without it).

    Error bars span ``<metric>_<part>_ci_low`` .. ``_ci_high`` (the 95 % bootstrap interval
    over tiles) where both are finite; otherwise plain bars.  Non-finite values (NaN for an
    empty pixel set, inf PSNR of an exact copy) get no bar and an "n/a" / "inf" label.
    """
    col = f"{metric}_{part}"
    if col not in summary:
        raise KeyError(f"summary has no column {col!r} (columns: {list(summary.columns)})")
    sets = (
        [(str(k), g) for k, g in summary.groupby("evaluation", sort=False)]
        if "evaluation" in summary and len(summary)
        else [("", summary)]
    )
    width = max(len(g) for _, g in sets) if sets else 1
    fig = Figure(figsize=((1.0 * width + 1.5) * len(sets) + 1.0, 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(sets), sharey=True))
    has_ci = f"{col}_ci_low" in summary and f"{col}_ci_high" in summary
    for ax, (name, group) in zip(axes, sets, strict=True):
        _bars(ax, group, col, has_ci)
        ax.set_title(f"{name} ({_tiles(group)})" if name else _tiles(group), fontsize=9)
    axes[0].set_ylabel(metric_label(col))
    title = with_region(f"{metric.upper()} on {part} pixels", region_names(summary))
    if has_ci:
        title += " (error bars: 95 % bootstrap interval over tiles)"
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def _tiles(group: pd.DataFrame) -> str:
    if "tiles" not in group or group.empty:
        return ""
    return f"{int(pd.to_numeric(group['tiles']).max())} tiles"


def _bars(ax: Axes, group: pd.DataFrame, col: str, has_ci: bool) -> None:
    methods = [str(m) for m in group["method"]]
    values = pd.to_numeric(group[col], errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(values)
    x = np.arange(len(methods))
    bars = ax.bar(x, np.where(finite, values, 0.0), width=0.6, color="tab:blue")
    if has_ci:
        low = pd.to_numeric(group[f"{col}_ci_low"], errors="coerce").to_numpy(dtype=float)
        high = pd.to_numeric(group[f"{col}_ci_high"], errors="coerce").to_numpy(dtype=float)
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
    ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("method")


_DIFFICULTY = {
    "cloud_fraction": ("cloud fraction of the input date (share of pixels)", "cloud cover"),
    "gap_days": ("days from a masked pixel to its nearest available date (mean)", "gap"),
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
    for ax, (column, (label, title)) in zip(axes, _DIFFICULTY.items(), strict=True):
        ax.set_title(f"against {title}", fontsize=9)
        if metric not in table:
            panel_message(ax, f"column {metric!r} missing from the metrics table")
            continue
        if column not in table:
            panel_message(ax, f"column {column!r} missing from the metrics table")
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
            panel_message(ax, f"no finite {metric} / {column} values")
            continue
        ax.set_xlabel(label)
        ax.set_ylabel(metric_label(metric))
        ax.legend(fontsize=8)
    title = f"{metric_label(metric)} against the input's difficulty"
    fig.suptitle(with_region(title, region_names(table)), fontsize=11)
    save_figure(fig, path)


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
        panel_message(fig.subplots(), f"tile {tile.tile}: no date with masked pixels")
        save_figure(fig, path)
        return
    order = candidates[np.argsort(-masked[candidates], kind="stable")][:dates]
    chosen = np.sort(order)
    h, w = shape[2:]
    panel = 2.2
    fig = Figure(figsize=(panel * ncols, panel * len(chosen) * h / w + 0.6))
    axes = np.atleast_2d(fig.subplots(len(chosen), ncols, squeeze=False))
    for row, t in enumerate(chosen):
        truth = rgb_composite(refl[t], index)
        lo, hi = stretch_limits(truth, clear[t])
        date = tile.dates[t]
        frac = masked[t] / (h * w)
        shown = stretch(truth, lo, hi)
        shown[~clear[t]] = CLOUD_COLOUR
        shown[gap[t] & tile.valid[t]] = GAP_COLOUR
        show_image(axes[row, 0], shown, f"{date}\ninput ({frac:.0%} masked)")
        for col, (name, pred) in enumerate(predictions.items(), start=1):
            show_image(
                axes[row, col], stretch(rgb_composite(pred[t], index), lo, hi), f"{date}\n{name}"
            )
        show_image(axes[row, -1], stretch(truth, lo, hi), f"{date}\ntruth")
    fig.suptitle(
        f"Tile {tile.tile} ({tile.split}, {label}): magenta = evaluation gap, black = cloud/nodata"
        f"\n{w} x {h} pixels a panel, reflectance stretched 2-98 % per row",
        fontsize=9,
    )
    save_figure(fig, path)


def experiment_comparison(
    comparison: pd.DataFrame, path: str | os.PathLike[str], *, region: str = ""
) -> None:
    """The pooled masked MAE of every experiment and baseline minus the reference experiment's,
    one panel per evaluation set (the table of
    :func:`cloudfree.metrics.compare.compare_experiments`).

    One line per experiment from the top (the reference labelled "(reference)", "n seeds"
    when more than one run was averaged), then, below a dashed separator, the baselines in
    grey.  The dot is the mean over tiles of the paired difference, the horizontal bar its
    95 % bootstrap interval where both ends are finite and it is not just the dot (the
    reference's own 0); a plain dot otherwise; no dot and
    "n/a" where the difference itself is missing); the vertical line marks 0.
    """
    col = "mae_masked_diff_reference"
    if len(comparison) and col not in comparison:
        raise KeyError(f"comparison has no column {col!r} (columns: {list(comparison.columns)})")
    sets = (
        [(str(k), g) for k, g in comparison.groupby("evaluation", sort=False)]
        if len(comparison) and "evaluation" in comparison
        else []
    )
    rows = max((len(g) for _, g in sets), default=1)
    fig = Figure(figsize=(5.6 * max(len(sets), 1), 0.45 * rows + 1.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(sets), 1), squeeze=False)[0])
    if not sets:
        panel_message(axes[0], "no experiment to compare")
    intervals = False
    for ax, (name, group) in zip(axes, sets, strict=False):
        kinds = group["kind"].astype(str).to_numpy() if "kind" in group else None
        baseline = kinds == "baseline" if kinds is not None else np.zeros(len(group), bool)
        labels = []
        for (_, row), is_baseline in zip(group.iterrows(), baseline, strict=True):
            if is_baseline:
                labels.append(str(row.get("method", "")))
                continue
            label = str(row.get("experiment", ""))
            seeds = pd.to_numeric(row.get("seeds", 1), errors="coerce")
            if np.isfinite(seeds) and seeds > 1:
                label += f", {int(seeds)} seeds"
            labels.append(label + (" (reference)" if bool(row.get("reference", False)) else ""))
        y = -np.arange(len(group), dtype=float)
        x = pd.to_numeric(group[col], errors="coerce").to_numpy(dtype=float)
        low, high = (
            pd.to_numeric(group[c], errors="coerce").to_numpy(dtype=float)
            if c in group
            else np.full(len(group), np.nan)
            for c in (f"{col}_ci_low", f"{col}_ci_high")
        )
        colours = np.where(baseline, "grey", "tab:blue")
        ok = np.isfinite(x)
        bars = ok & np.isfinite(low) & np.isfinite(high) & ((low != x) | (high != x))
        intervals |= bool(bars.any())
        for c in ("tab:blue", "grey"):
            sel = bars & (colours == c)
            if sel.any():
                err = np.vstack(
                    [np.clip(x[sel] - low[sel], 0, None), np.clip(high[sel] - x[sel], 0, None)]
                )
                ax.errorbar(x[sel], y[sel], xerr=err, fmt="none", ecolor=c, capsize=3)
            sel = ok & (colours == c)
            ax.plot(x[sel], y[sel], "o", color=c, ms=5)
        for yi in y[~ok]:
            ax.annotate("n/a", (0, yi), xytext=(4, 0), textcoords="offset points", va="center")
        ax.axvline(0.0, color="black", lw=0.8)
        if baseline.any() and not baseline.all():
            ax.axhline(y[np.argmax(baseline)] + 0.5, color="grey", ls="--", lw=0.8)
        ax.set_yticks(y, labels, fontsize=8)
        for tick, is_baseline in zip(ax.get_yticklabels(), baseline, strict=True):
            tick.set_color("grey" if is_baseline else "black")
        ax.set_ylim(y.min() - 0.6, 0.6)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.tick_params(axis="x", labelsize=8)
        notes = [str(n) for n in group.get("note", pd.Series(dtype=str)).fillna("") if str(n)]
        title = f"{name} ({_tiles(group)})" if _tiles(group) else name
        ax.set_title(title + (f"\n{notes[0]}" if notes else ""), fontsize=9)
        ax.set_xlabel(
            "masked MAE − reference (reflectance); < 0: better than the reference", fontsize=8
        )
        ax.set_ylabel("experiment or baseline", fontsize=8)
    title = with_region(
        "Masked MAE against the reference experiment", region or region_names(comparison)
    )
    if intervals:
        title += " (bars: 95 % bootstrap interval over tiles)"
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)
