"""Tests of cloudfree.tiles.synthetic.fields: the fractal random fields."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.tiles.synthetic.fields import fractal_noise


def spectral_slope(field: np.ndarray) -> float:
    """Log-log slope of the radially pooled power spectrum (Hann-windowed)."""
    h, w = field.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((field - field.mean()) * win)) ** 2
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]).ravel()
    sel = (r > 0.02) & (r < 0.25)
    return float(np.polyfit(np.log(r[sel]), np.log(power.ravel()[sel]), 1)[0])


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_fractal_noise_statistics(beta: float) -> None:
    f = fractal_noise((256, 192), beta, np.random.default_rng(3))
    assert f.shape == (256, 192)
    assert abs(f.mean()) < 1e-9 and abs(f.std() - 1) < 1e-9
    assert spectral_slope(f) == pytest.approx(-beta, abs=0.25)
    again = fractal_noise((256, 192), beta, np.random.default_rng(3))
    np.testing.assert_array_equal(f, again)


def test_fractal_noise_smoothness_and_anisotropy() -> None:
    def lag_corr(f: np.ndarray, axis: int, lag: int = 4) -> float:
        a = f.take(range(f.shape[axis] - lag), axis=axis)
        b = f.take(range(lag, f.shape[axis]), axis=axis)
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    rough = fractal_noise((128, 128), 1.0, np.random.default_rng(0))
    smooth = fractal_noise((128, 128), 3.0, np.random.default_rng(0))
    assert lag_corr(smooth, 1) > lag_corr(rough, 1) + 0.3
    # Streaks along x (angle 0): much longer correlation along x than along y.
    streak = fractal_noise((128, 128), 3.0, np.random.default_rng(0), anisotropy=5.0)
    assert 3 * (1 - lag_corr(streak, 1, 8)) < 1 - lag_corr(streak, 0, 8)
