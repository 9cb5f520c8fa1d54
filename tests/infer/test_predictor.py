"""Tests of cloudfree.infer.predictor: reconstructions of any size, in blended windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cloudfree.config import section
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.infer.predictor import Predictor, load_model, run_products
from cloudfree.packed import iter_tiles

from ..model_file import load_predictor, write_model_file

INFER = section("infer")


def _run(model: torch.nn.Module, *series: torch.Tensor, **settings: Any) -> dict:
    """:func:`run_products` in full precision, the infer section's windows under ``settings``."""
    windows = {k: INFER[k] for k in ("window", "overlap", "batch_size")}
    return run_products(model, *series, **{**windows, "amp_dtype": None, **settings})


def test_predictor_reconstructs_any_size(trained: dict[str, Any], packed: Path) -> None:
    pred = load_predictor(trained["model"])
    assert isinstance(pred, Predictor) and pred.bands[0] == "B01"
    rng = np.random.default_rng(0)
    s2 = rng.integers(500, 3000, (4, 13, 50, 70)).astype(np.uint16)
    avail = rng.random((4, 50, 70)) > 0.3
    out = pred.reconstruct(s2, avail, np.array([10, 50, 90, 200]))
    assert out.shape == (4, 13, 50, 70) and out.dtype == np.float32
    assert np.isfinite(out).all()
    # Windowed inference covers the image and agrees with the single pass (local norms).
    small = load_predictor(trained["model"], window=32)
    tiled = small.reconstruct(s2, avail, np.array([10, 50, 90, 200]))
    assert tiled.shape == out.shape
    assert np.abs(tiled - out).mean() < 1e-3
    tile = next(iter_tiles(packed, "val"))
    rec = pred.reconstruct(tile.s2, tile.clear, tile.doy)
    assert rec.shape == tile.s2.shape
    with pytest.raises(InputDataError):
        pred.reconstruct(s2[:, :5], avail, np.arange(4))
    with pytest.raises(InputDataError):
        pred.reconstruct(s2, avail[:3], np.arange(4))


def test_load_model_reads_the_file_and_picks_the_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_model_file(tmp_path / "m.pt")
    pred = load_model(path, "cpu", window=64, overlap=8, batch_size=2, amp=True)
    assert pred.device == torch.device("cpu") and (pred.window, pred.overlap) == (64, 8)
    assert pred.meta["params"]["crop"] == 16 and "state_dict" not in pred.meta
    assert pred.amp_dtype is None  # no mixed precision off CUDA
    assert pred.embedding_size == 16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"infer\.device: 'cuda' requested"):
        load_model(path, "cuda", window=64, overlap=8, batch_size=2, amp=True)


def _series(size: int, t: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.1 + 0.1 * np.sin(6 * yy) * np.cos(4 * xx)
    x = np.stack([base + 0.02 * rng.standard_normal((13, size, size)) for _ in range(t)])
    avail = rng.random((t, size, size)) > 0.3
    return (
        torch.from_numpy(((x - 0.15) / 0.08).astype(np.float32)) * torch.from_numpy(avail[:, None]),
        torch.from_numpy(avail.astype(np.float32)),
        torch.tensor([20, 80, 150, 300]),
    )


def test_no_seams_on_a_raster_three_times_the_training_size(tmp_path) -> None:
    """Training crop 32 px, raster 96 px: windowed + blended vs one pass over everything."""
    model = load_predictor(write_model_file(tmp_path / "m.pt")).model
    x, avail, doy = _series(96)
    single = _run(model, x, avail, doy, window=128)["pred"]
    blended = _run(model, x, avail, doy, window=32, overlap=16, batch_size=5)["pred"]
    cropped = _run(model, x, avail, doy, window=32, overlap=0)["pred"]  # hard tiles
    scale = single.std().item()
    assert (blended - single).abs().mean().item() < 0.05 * scale
    assert (cropped - single).abs().mean().item() > 0.1 * scale  # what blending removes
    # No step at the hard tiles' boundaries (columns 31|32 and 63|64): the mean jump across
    # them is that of the single pass, where the hard tiling jumps much more.
    for col in (32, 64):
        jump = {
            name: (out[..., col] - out[..., col - 1]).abs().mean().item()
            for name, out in (("single", single), ("blended", blended), ("cropped", cropped))
        }
        assert jump["blended"] < 1.05 * jump["single"]
        assert jump["cropped"] > 1.3 * jump["single"]


def test_embeddings_and_change_follow_the_windows(tmp_path) -> None:
    model = load_predictor(write_model_file(tmp_path / "m.pt")).model
    x, avail, doy = _series(40)
    out = _run(
        model, x, avail, doy, window=16, overlap=8, embed_channels=[0, 3],
        change_pairs=[(0, 1), (2, 3)],
    )  # fmt: skip
    assert out["embedding"].shape == (4, 2, 40, 40)
    assert out["change"].shape == (2, 40, 40)
    assert out["change"].abs().max() <= 1 + 1e-5
    single = _run(model, x, avail, doy, window=64, change_pairs=[(0, 1)])
    assert (out["change"][0] - single["change"][0]).abs().mean() < 0.1
