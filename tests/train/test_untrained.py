"""Tests of cloudfree.train.untrained: a baseline model gets its files without training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cloudfree.modelfile import read_model_file
from cloudfree.train.history import HISTORY_COLUMNS
from cloudfree.train.loop import train_model

from ..model_file import load_predictor


def test_baseline_needs_no_training(
    small_packed: Path, tiny_params: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    params = tiny_params(model={"name": "linear"})
    summary = train_model([small_packed], tmp_path / "m.pt", tmp_path / "h.csv", params)
    assert summary["steps"] == 0 and summary["val_mae_masked"] > 0
    hist = pd.read_csv(tmp_path / "h.csv")
    assert tuple(hist.columns) == HISTORY_COLUMNS and list(hist["step"]) == [0]
    assert hist["val_mae_masked"].item() == summary["val_mae_masked"]
    _, meta = read_model_file(tmp_path / "m.pt")
    assert meta["model"]["name"] == "linear" and meta["steps_done"] == 0
    pred = load_predictor(tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    s2 = rng.integers(500, 3000, (3, 13, 8, 8)).astype(np.uint16)
    avail = np.ones((3, 8, 8), bool)
    avail[1] = False
    out = pred.reconstruct(s2, avail, np.array([10, 20, 30]))
    expect = (s2[0] + s2[2]) / 2 / 10000
    np.testing.assert_allclose(out[1], expect, atol=1e-4)
