"""The training-curve figure of a history table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudfree.train import curve
from cloudfree.train.curve import training_curve

from ..test_plotting import assert_png, capture


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch):
    return capture(monkeypatch, curve)


def _history(validated: bool) -> pd.DataFrame:
    history = pd.DataFrame(
        {
            "step": np.arange(1, 31),
            "train_loss": np.linspace(0.4, 0.04, 30),
            "val_mae_masked": np.nan,
        }
    )
    if validated:
        history.loc[9::10, "val_mae_masked"] = [0.09, 0.07, 0.06]
    return history


def test_training_curve(tmp_path: Path, saved) -> None:
    history = _history(validated=True)
    training_curve(history, tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    ax = saved[0].axes[0]
    loss, val = ax.lines
    assert list(loss.get_xdata()) == history["step"].tolist()
    assert list(val.get_xdata()) == [10, 20, 30] and list(val.get_ydata()) == [0.09, 0.07, 0.06]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "train loss (L1)",
        "val MAE (masked)",
    ]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "step"


def test_training_curve_without_validation(tmp_path: Path, saved) -> None:
    training_curve(_history(validated=False), tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    assert len(saved[0].axes[0].lines) == 1
