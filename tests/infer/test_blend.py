"""Tests of cloudfree.infer.blend: windows that cover with overlap, and weights that cross-fade."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cloudfree.infer.blend import blend, ramp, window_length, window_starts


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
