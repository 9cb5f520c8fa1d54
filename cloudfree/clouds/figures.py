"""Figures of the cloud statistics: coverage heat map, cloudy run lengths, clear dates per tile.

Reads the tables of :func:`cloudfree.clouds.region.cloud_statistics`; writes one PNG each.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cloudfree.plotting import panel_message, region_names, save_figure, with_region


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
    ax.set_xlabel("acquisition date")
    ax.set_ylabel("tile")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="cloud fraction (share of the tile's pixels)")
    save_figure(fig, path)


def run_length_histogram(
    runs: pd.DataFrame, path: str | os.PathLike[str], region: str = ""
) -> None:
    """Runs of consecutive cloudy dates: per pixel (left) and per tile, non-clear (right)."""
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    for ax, column, title, unit in (
        (axes[0], "count", "per pixel (not clear)", "pixel runs"),
        (axes[1], "date_runs", "per tile (dates not clear)", "tile runs"),
    ):
        if column not in runs or runs[column].sum() == 0:
            panel_message(ax, "no cloudy runs")
            continue
        ax.bar(runs["run_length"], runs[column], color="steelblue")
        ax.set_xlabel("run length (consecutive cloudy dates)")
        ax.set_ylabel(f"number of runs ({unit})")
        ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(with_region("Cloudy run lengths", region or region_names(runs)), fontsize=10)
    save_figure(fig, path)


def clear_dates_distribution(tiles: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Tiles by number of clear dates (left) and by longest gap between clear dates (right)."""
    fig = Figure(figsize=(8, 3.2))
    axes = fig.subplots(1, 2)
    n_max = int(tiles["n_dates"].max()) if len(tiles) else 0
    counts = np.bincount(tiles["n_clear"].astype(int), minlength=n_max + 1)
    axes[0].bar(np.arange(len(counts)), counts, color="seagreen")
    axes[0].set_xlabel("clear dates per tile (dates)")
    axes[0].set_ylabel("number of tiles")
    axes[0].set_title("tiles by number of clear dates", fontsize=9)
    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    gaps = tiles["longest_gap_days"].dropna()
    if gaps.empty:
        panel_message(axes[1], "no dates")
    else:
        axes[1].hist(gaps, bins=min(20, max(1, gaps.nunique())), color="indianred")
        axes[1].set_xlabel("longest gap without a clear date (days)")
        axes[1].set_ylabel("number of tiles")
        axes[1].set_title("tiles by longest gap between clear dates", fontsize=9)
    fig.suptitle(with_region("Clear dates", region_names(tiles)), fontsize=10)
    save_figure(fig, path)
