"""Fractal (power-law) Gaussian random fields: the kernel under land cover, texture and clouds."""

from __future__ import annotations

import math

import numpy as np


def fractal_noise(
    shape: tuple[int, int],
    beta: float,
    rng: np.random.Generator,
    *,
    anisotropy: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """Zero-mean, unit-std Gaussian field with power spectrum ~ 1/|f|**beta.

    Spectral synthesis on a grid 1.5x larger, then cropped, so the field does not wrap
    around (the FFT makes it periodic).  ``anisotropy`` > 1 stretches structures along
    ``angle`` (radians from the x axis), e.g. for cirrus streaks.
    """
    h, w = int(shape[0]), int(shape[1])
    ph, pw = h + h // 2 + 1, w + w // 2 + 1
    fy = np.fft.fftfreq(ph)[:, None]
    fx = np.fft.rfftfreq(pw)[None, :]
    # Rotate frequencies; compress the along-streak one so structures get long that way.
    u = fx * math.cos(angle) + fy * math.sin(angle)
    v = -fx * math.sin(angle) + fy * math.cos(angle)
    f = np.hypot(u * anisotropy, v)
    f[0, 0] = np.inf  # no DC: mean is set afterwards
    amp = f ** (-beta / 2.0)
    spec = rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)
    out = np.fft.irfft2(spec * amp, s=(ph, pw))
    oy, ox = rng.integers(0, ph - h + 1), rng.integers(0, pw - w + 1)
    out = out[oy : oy + h, ox : ox + w]
    out -= out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out
