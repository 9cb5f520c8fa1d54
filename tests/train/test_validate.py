"""Tests of cloudfree.train.validate: scores on the val tiles' fixed gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cloudfree.packed import compute_norm_stats, iter_tiles
from cloudfree.train.dataset import EvalTiles
from cloudfree.train.validate import evaluate


class Zero(torch.nn.Module):
    """Predicts 0 in normalised units: the per-band training mean everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, x, avail, doy, pad=None):
        return torch.zeros_like(x)


def test_scores_are_reflectance_errors_over_the_gaps(packed: Path) -> None:
    mean, std = compute_norm_stats([packed])
    tiles = EvalTiles([packed], (mean, std), split="val")
    scores = evaluate(Zero(), tiles, std.astype(np.float32), None)
    tiles.close()
    errs = []
    for tile in iter_tiles(packed, "val"):
        refl = tile.s2.astype(np.float64) / 10000
        hidden = tile.clear & tile.gap
        errs.append((refl - mean[None, :, None, None]).transpose(1, 0, 2, 3)[:, hidden])
    err = np.concatenate(errs, axis=1)
    assert scores["count"] == err.size
    assert scores["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert scores["psnr"] == pytest.approx(10 * np.log10(1 / (err**2).mean()), rel=1e-5)


def test_no_gap_pixels_no_score(packed: Path) -> None:
    tiles = EvalTiles([packed], compute_norm_stats([packed]), split="train")  # no gaps there
    scores = evaluate(Zero(), tiles, np.ones(13, np.float32), None)
    assert scores["count"] == 0 and np.isnan(scores["mae"]) and np.isnan(scores["psnr"])
