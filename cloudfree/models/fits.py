"""Per-pixel curve fits of a cloudy series: harmonic regression and the Whittaker smoother.

Kernels on arrays with the baselines' signature (see :mod:`cloudfree.models.baselines`); both
return the input at available pixels and fall back to ``linear`` where a pixel has too few
observations for its fit.
"""

from __future__ import annotations

import math

import numpy as np

from cloudfree.models.interpolate import linear, prepare

# Annual and semi-annual terms, days.
HARMONIC_PERIODS = (365.25, 365.25 / 2)
# Fewest observations of a pixel for a harmonic fit (5 coefficients): below, ``linear``.
HARMONIC_MIN_OBS = 8
# Ridge on the harmonic coefficients (not the mean), relative to the number of observations:
# keeps near-singular fits (observations bunched in one season) from swinging.
HARMONIC_RIDGE = 1e-6
# Whittaker smoothness (second differences in reflectance per day^2): a cut-off period of
# about 2 pi lambda^(1/4) = 63 days.
WHITTAKER_LAMBDA = 1e4
PIXELS_PER_SOLVE = 4096  # pixels whose T x T systems are solved at once (memory)


def harmonic_design(days: np.ndarray) -> np.ndarray:
    """(T, K) regressors at ``days``: a constant, and a cosine and sine per period."""
    cols = [np.ones_like(days, dtype=np.float64)]
    for period in HARMONIC_PERIODS:
        w = 2 * math.pi * np.asarray(days, dtype=np.float64) / period
        cols += [np.cos(w), np.sin(w)]
    return np.stack(cols, axis=1)


def harmonic(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Per pixel and band, least squares of a constant plus annual and semi-annual harmonics
    on the available dates, evaluated at every date; ``linear`` for pixels with fewer than
    HARMONIC_MIN_OBS observations."""
    refl, available, days = prepare(refl, available, days)
    t, c = refl.shape[:2]
    out = linear(refl, available, days)
    if t == 0:
        return out
    design = harmonic_design(days)
    k = design.shape[1]
    seen = available.reshape(t, -1)
    count = seen.sum(axis=0)
    fit = np.flatnonzero(count >= HARMONIC_MIN_OBS)
    flat = out.reshape(t, c, -1)
    values = refl.reshape(t, c, -1)
    ridge = HARMONIC_RIDGE * np.diag([0.0] + [1.0] * (k - 1))
    for s in range(0, fit.size, PIXELS_PER_SOLVE):
        idx = fit[s : s + PIXELS_PER_SOLVE]
        weights = seen[:, idx].astype(np.float64)  # (T, P)
        normal = np.einsum("tp,tk,tl->pkl", weights, design, design)
        normal += count[idx][:, None, None] * ridge
        y = np.where(seen[:, None, idx], values[:, :, idx], 0.0).astype(np.float64)
        rhs = np.einsum("tp,tk,tcp->pkc", weights, design, y)
        coef = np.linalg.solve(normal, rhs)  # (P, K, C)
        pred = np.einsum("tk,pkc->tcp", design, coef).astype(np.float32)
        flat[:, :, idx] = np.where(seen[:, None, idx], values[:, :, idx], pred)
    return out


def second_differences(days: np.ndarray) -> np.ndarray:
    """(T - 2, T) second divided differences on uneven ``days`` (a second derivative)."""
    n = len(days)
    d = np.zeros((max(n - 2, 0), n))
    for i in range(n - 2):
        h1 = max(float(days[i + 1] - days[i]), 1e-6)
        h2 = max(float(days[i + 2] - days[i + 1]), 1e-6)
        d[i, i : i + 3] = 2.0 / (h1 * (h1 + h2)), -2.0 / (h1 * h2), 2.0 / (h2 * (h1 + h2))
    return d


def whittaker(refl: np.ndarray, available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Whittaker smoother per pixel and band (Eilers 2003, uneven spacing): z minimising
    sum_available (y - z)^2 + WHITTAKER_LAMBDA * sum (second differences of z)^2, at every
    date; ``linear`` for pixels with fewer than two observations (a line needs two)."""
    refl, available, days = prepare(refl, available, days)
    t, c = refl.shape[:2]
    out = linear(refl, available, days)
    if t < 3:
        return out
    d2 = second_differences(days)
    penalty = WHITTAKER_LAMBDA * d2.T @ d2
    seen = available.reshape(t, -1)
    fit = np.flatnonzero(seen.sum(axis=0) >= 2)
    flat = out.reshape(t, c, -1)
    values = refl.reshape(t, c, -1)
    eye = np.eye(t)
    for s in range(0, fit.size, PIXELS_PER_SOLVE):
        idx = fit[s : s + PIXELS_PER_SOLVE]
        weights = seen[:, idx].T.astype(np.float64)  # (P, T)
        system = penalty[None] + weights[:, :, None] * eye[None]
        y = np.where(seen[:, None, idx], values[:, :, idx], 0.0).astype(np.float64)
        rhs = weights[:, :, None] * y.transpose(2, 0, 1)  # (P, T, C)
        z = np.linalg.solve(system, rhs).transpose(1, 2, 0).astype(np.float32)  # (T, C, P)
        flat[:, :, idx] = np.where(seen[:, None, idx], values[:, :, idx], z)
    return out
