"""Figures for the report (matplotlib, written atomically as PNG)."""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

from .io import atomic_path


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    # Figure without pyplot: no global state, no GUI backend, safe in any job.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def coverage_heatmap(table: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Cloud (and thin cloud) fraction per tile (rows) and date (columns)."""
    grid = table.pivot(index="tile", columns="date", values="cloud_fraction")
    fig = Figure(figsize=(max(4, 0.45 * grid.shape[1] + 2), 0.35 * grid.shape[0] + 1.5))
    ax = fig.subplots()
    im = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set_title(f"Cloud cover, {table['region'].iloc[0]}")
    fig.colorbar(im, ax=ax, label="cloud fraction")
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
