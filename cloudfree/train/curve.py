"""The training-curve figure: reads a model's history table, writes one PNG."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cloudfree.plotting import panel_message, save_figure

DECADE = 10.0  # values spanning this factor get a log axis


def training_curve(history: pd.DataFrame, path: str | os.PathLike[str], run: str = "") -> None:
    """The training loss (top) and the validation MAE on masked pixels (bottom) against the
    step, each on its own axis over the same steps (log where its values span a factor 10):
    the loss weighs the hidden and the observed pixels' errors, the MAE is the hidden pixels'
    error alone.  A panel without values says so.  ``run`` names the run in the title."""
    fig = Figure(figsize=(6.4, 5.0), layout="constrained")
    loss_ax, val_ax = fig.subplots(2, 1)
    trained = history[np.isfinite(pd.to_numeric(history["train_loss"], errors="coerce"))]
    val = history.dropna(subset=["val_mae_masked"])
    panels = (
        (loss_ax, trained, "train_loss", "-", "train loss (L1)", "weighted L1 (normalised units)"),
        (val_ax, val, "val_mae_masked", "o-", "val MAE (masked)", "MAE (reflectance)"),
    )
    for ax, rows, column, style, label, unit in panels:
        if rows.empty:
            panel_message(ax, "no training step" if ax is loss_ax else "not validated")
            continue
        ax.plot(rows["step"], rows[column], style, lw=0.8, ms=3, label=label)
        values = pd.to_numeric(rows[column], errors="coerce")
        if values.min() > 0 and values.max() >= DECADE * values.min():
            ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
    if not (trained.empty or val.empty):
        val_ax.set_xlim(loss_ax.get_xlim())
    loss_ax.set_title("Training loss per step (masked and observed pixels)", fontsize=9)
    val_ax.set_title("Validation MAE on the masked pixels of the validation tiles", fontsize=9)
    fig.suptitle(f"Training curve, run {run}" if run else "Training curve", fontsize=10)
    save_figure(fig, path)
