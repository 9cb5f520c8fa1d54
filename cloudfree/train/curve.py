"""The training-curve figure: reads a model's history table, writes one PNG."""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

from cloudfree.plotting import save_figure


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
    save_figure(fig, path)
