"""The interpolating baselines' kernels: linear interpolation with a per-date offset."""

from __future__ import annotations

import numpy as np

from cloudfree.models.interpolate import (
    OFFSET_MIN_PIXELS,
    interpolate_between,
    linear,
    linear_offset,
)

DAYS = np.array([0, 10, 20, 35, 50, 60], dtype=float)


def _trend(h: int = 8, w: int = 8) -> np.ndarray:
    """(T, 2, h, w): every pixel linear in time, with its own level and slope."""
    rng = np.random.default_rng(0)
    level = rng.uniform(0.05, 0.3, (1, 2, h, w))
    slope = rng.uniform(-2e-3, 2e-3, (1, 2, h, w))
    return (level + slope * DAYS[:, None, None, None]).astype(np.float32)


def test_linear_offset_recovers_a_date_seen_through_another_atmosphere() -> None:
    truth = _trend()
    truth[3, 0] += 0.03  # date 3 is brighter in band 0 by 0.03 everywhere
    truth[3, 1] -= 0.01
    available = np.ones(truth.shape[:1] + truth.shape[2:], dtype=bool)
    available[3, :4, :4] = False  # a cloud on date 3: 16 hidden, 48 observed pixels
    out = linear_offset(truth, available, DAYS)
    hidden = ~available[3]
    np.testing.assert_allclose(out[3][:, hidden], truth[3][:, hidden], atol=1e-6)
    np.testing.assert_array_equal(
        out[available[:, None].repeat(2, 1)], truth[available[:, None].repeat(2, 1)]
    )
    plain = linear(truth, available, DAYS)
    np.testing.assert_allclose(truth[3, 0][hidden] - plain[3, 0][hidden], 0.03, atol=1e-6)


def test_linear_offset_needs_enough_observed_pixels_on_the_date() -> None:
    truth = _trend(4, 4)
    truth[2] += 0.05
    available = np.ones((6, 4, 4), dtype=bool)
    available[2] = False
    available[2, 0, : OFFSET_MIN_PIXELS // 4 - 1] = True  # fewer than OFFSET_MIN_PIXELS seen
    np.testing.assert_array_equal(
        linear_offset(truth, available, DAYS), linear(truth, available, DAYS)
    )


def test_interpolate_between_weights_by_days_and_extrapolates_constantly() -> None:
    refl = np.array([1.0, 0.0, 3.0, 0.0], dtype=np.float32)[:, None, None, None]
    days = np.array([0.0, 1.0, 4.0, 9.0])
    prev = np.array([0, 0, 2, 2])[:, None, None]
    nxt = np.array([0, 2, 2, 4])[:, None, None]  # 4 = T: no later date
    out = interpolate_between(refl, prev, nxt, days)[:, 0, 0, 0]
    np.testing.assert_allclose(out, [1.0, 1.0 + 2.0 * 1 / 4, 3.0, 3.0])
    none = interpolate_between(refl, np.full((4, 1, 1), -1), np.full((4, 1, 1), 4), days)
    assert np.isnan(none).all()
