"""The training-curve figure of a history table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudfree.train import curve
from cloudfree.train.curve import training_curve

from ..test_plotting import assert_labelled, assert_png, capture, texts


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
    training_curve(history, tmp_path / "c.png", run="africa")
    assert_png(tmp_path / "c.png")
    fig = saved[0]
    loss_ax, val_ax = fig.axes
    (loss,) = loss_ax.lines
    (val,) = val_ax.lines
    assert list(loss.get_xdata()) == history["step"].tolist()
    assert list(val.get_xdata()) == [10, 20, 30] and list(val.get_ydata()) == [0.09, 0.07, 0.06]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train loss (L1)"]
    assert [t.get_text() for t in val_ax.get_legend().get_texts()] == ["val MAE (masked)"]
    assert loss_ax.get_yscale() == "log"  # 0.4 to 0.04: a decade
    assert val_ax.get_yscale() == "linear"  # 0.09 to 0.06
    assert loss_ax.get_xlabel() == val_ax.get_xlabel() == "training step"
    assert loss_ax.get_ylabel() == "weighted L1 (normalised units)"
    assert val_ax.get_ylabel() == "MAE (reflectance)"
    assert val_ax.get_xlim() == loss_ax.get_xlim()  # the same steps on both
    assert fig.get_suptitle() == "Training curve, run africa"
    assert_labelled(fig)


def test_training_curve_without_validation(tmp_path: Path, saved) -> None:
    training_curve(_history(validated=False), tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    loss_ax, val_ax = saved[0].axes
    assert len(loss_ax.lines) == 1 and not val_ax.lines
    assert "not validated" in texts(saved[0]) and saved[0].get_suptitle() == "Training curve"
    assert_labelled(saved[0])


def test_training_curve_of_an_untrained_model(tmp_path: Path, saved) -> None:
    """The history of a model that took no step: one row, no loss."""
    history = pd.DataFrame({"step": [0], "train_loss": [np.nan], "val_mae_masked": [0.2]})
    training_curve(history, tmp_path / "c.png")
    assert_png(tmp_path / "c.png", min_side=50)
    assert "no training step" in texts(saved[0])
    assert_labelled(saved[0])
