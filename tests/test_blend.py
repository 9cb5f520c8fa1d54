"""Sliding windows with blending weights: exact on smooth inputs, and no seams."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cloudfree.infer.blend import blend, ramp, window_length, window_starts
from cloudfree.infer.predictor import load_model, run_products

from .model_file import write_model_file


@pytest.mark.parametrize(("size", "window", "overlap"), [(50, 64, 8), (100, 32, 8), (257, 64, 16)])
def test_windows_cover_with_overlap(size: int, window: int, overlap: int) -> None:
    window = window_length(size, window, overlap, multiple=4)
    assert window % 4 == 0 or window == size
    starts = window_starts(size, window, overlap)
    assert starts[0] == 0 and min(size, starts[-1] + window) == size
    for a, b in itertools.pairwise(starts):
        assert b - a <= window - overlap  # neighbours overlap by at least `overlap`


def test_windows_shrink_to_cover_evenly() -> None:
    assert window_length(512, 256, 32) == 192 and window_starts(512, 192, 32) == [0, 160, 320]
    assert window_length(100, 256, 32) == 100 and window_starts(100, 100, 32) == [0]


def test_ramps_cross_fade_to_one() -> None:
    w = ramp(32, 8, rise=True, fall=True)
    assert w[:2].tolist() == [0.0, 0.0] and (w[2:30] > 0).all() and w[8:24].tolist() == [1.0] * 16
    np.testing.assert_allclose(w[24:] + w[:8], 1.0, rtol=1e-6)  # sin^2 + cos^2
    assert ramp(32, 8, rise=False, fall=False).tolist() == [1.0] * 32


def test_blend_reproduces_any_position_function() -> None:
    """Windows returning their pixels' own coordinates blend back to the exact coordinates."""
    h, w = 70, 45

    def coords(offsets, size):
        hh, ww = size
        ys = [torch.arange(y0, y0 + hh, dtype=torch.float32) for y0, _ in offsets]
        xs = [torch.arange(x0, x0 + ww, dtype=torch.float32) for _, x0 in offsets]
        return {
            "y": torch.stack([y[:, None].expand(hh, ww) for y in ys]),
            "x": torch.stack([x[None, :].expand(hh, ww) for x in xs]),
        }

    out = blend(coords, (h, w), window=24, overlap=6, batch_size=3)
    yy, xx = np.mgrid[0:h, 0:w]
    np.testing.assert_allclose(out["y"].numpy(), yy, atol=1e-4)
    np.testing.assert_allclose(out["x"].numpy(), xx, atol=1e-4)


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
    model = load_model(write_model_file(tmp_path / "m.pt"), device="cpu").model
    x, avail, doy = _series(96)
    single = run_products(model, x, avail, doy, window=128)["pred"]
    blended = run_products(model, x, avail, doy, window=32, overlap=16, batch_size=5)["pred"]
    cropped = run_products(model, x, avail, doy, window=32, overlap=0)["pred"]  # hard tiles
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
    model = load_model(write_model_file(tmp_path / "m.pt"), device="cpu").model
    x, avail, doy = _series(40)
    out = run_products(
        model, x, avail, doy, window=16, overlap=8, embed_channels=[0, 3],
        change_pairs=[(0, 1), (2, 3)],
    )  # fmt: skip
    assert out["embedding"].shape == (4, 2, 40, 40)
    assert out["change"].shape == (2, 40, 40)
    assert out["change"].abs().max() <= 1 + 1e-5
    single = run_products(model, x, avail, doy, window=64, change_pairs=[(0, 1)])
    assert (out["change"][0] - single["change"][0]).abs().mean() < 0.1
