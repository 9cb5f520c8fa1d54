"""Harmonic regression and the Whittaker smoother on hand-made series with known answers."""

from __future__ import annotations

import math

import numpy as np

from cloudfree.models.fits import (
    HARMONIC_MIN_OBS,
    harmonic,
    harmonic_design,
    second_differences,
    whittaker,
)
from cloudfree.models.interpolate import linear

DAYS = np.array([5, 31, 60, 98, 121, 150, 190, 222, 250, 280, 311, 350], dtype=float)


def _seasonal(days: np.ndarray) -> np.ndarray:
    w = 2 * math.pi * days / 365.25
    return 0.3 + 0.05 * np.cos(w) + 0.02 * np.sin(w) + 0.01 * np.cos(2 * w) - 0.015 * np.sin(2 * w)


def test_harmonic_recovers_a_seasonal_signal_at_hidden_dates() -> None:
    truth = _seasonal(DAYS).astype(np.float32)
    refl = np.stack([truth, 2 * truth], axis=1)[:, :, None, None].repeat(3, axis=3)
    available = np.ones((12, 1, 3), dtype=bool)
    available[[2, 7], 0, 0] = False  # pixel 0: 10 observations, a fit
    available[[1, 3, 5, 7, 9], 0, 1] = False  # pixel 1: 7 observations, too few
    out = harmonic(refl, available, DAYS)
    np.testing.assert_allclose(out[:, :, 0, 0], refl[:, :, 0, 0], atol=1e-5)
    assert available[:, 0, 1].sum() < HARMONIC_MIN_OBS
    np.testing.assert_array_equal(out[:, :, 0, 1], linear(refl, available, DAYS)[:, :, 0, 1])
    np.testing.assert_array_equal(out[:, :, 0, 2], refl[:, :, 0, 2])  # all seen: the input
    # linear interpolation cannot follow the curve over the two gaps
    assert (
        np.abs(linear(refl, available, DAYS)[[2, 7], :, 0, 0] - refl[[2, 7], :, 0, 0]).max() > 1e-3
    )


def test_harmonic_design_columns() -> None:
    design = harmonic_design(np.array([0.0, 365.25 / 4]))
    np.testing.assert_allclose(design[0], [1, 1, 0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(design[1], [1, 0, 1, -1, 0], atol=1e-12)


def test_whittaker_keeps_a_straight_line_and_fills_it() -> None:
    truth = (0.1 + 0.001 * DAYS).astype(np.float32)
    refl = truth[:, None, None, None].repeat(2, axis=3)
    available = np.ones((12, 1, 2), dtype=bool)
    available[3:9, 0, 0] = False  # a long gap: the line is continued through it
    available[:, 0, 1] = False
    available[[0, 11], 0, 1] = True  # two observations: the line through them
    out = whittaker(refl, available, DAYS)
    np.testing.assert_allclose(out[:, 0, 0, :], refl[:, 0, 0, :], atol=1e-5)


def test_whittaker_smooths_a_spike_and_keeps_observations() -> None:
    refl = np.full((12, 1, 1, 1), 0.2, dtype=np.float32)
    refl[6] = 0.5  # one observation off the trend
    available = np.ones((12, 1, 1), dtype=bool)
    available[5] = False
    out = whittaker(refl, available, DAYS)
    assert out[6, 0, 0, 0] == np.float32(0.5)  # observed pixels are the input
    assert 0.2 < out[5, 0, 0, 0] < 0.5  # the hidden neighbour is pulled up, not to the spike


def test_whittaker_with_one_observation_is_linear() -> None:
    refl = np.full((12, 1, 1, 1), 0.3, dtype=np.float32)
    available = np.zeros((12, 1, 1), dtype=bool)
    available[4] = True
    np.testing.assert_array_equal(whittaker(refl, available, DAYS), linear(refl, available, DAYS))


def test_second_differences_of_a_parabola_are_its_second_derivative() -> None:
    days = np.array([0.0, 1.0, 3.0, 7.0, 8.0])
    d2 = second_differences(days)
    np.testing.assert_allclose(d2 @ (days**2), 2.0)
    np.testing.assert_allclose(d2 @ (3 * days + 1), 0.0, atol=1e-12)
