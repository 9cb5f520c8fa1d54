"""Tests of cloudfree.models.baselines: hand-computed values, a np.interp reference, and the
baselines as models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS

from cloudfree.errors import ConfigError
from cloudfree.models.baselines import BASELINES, get_baseline
from cloudfree.models.interpolate import closest, last, least_cloudy, linear
from cloudfree.models.interpolate import mean as mean_baseline
from cloudfree.models.registry import build_model, count_parameters, is_trainable
from cloudfree.packed import TileSeries


def _pixel_series(values: list[float], bands: int = 1) -> np.ndarray:
    """(T, bands, 1, 1) float32; band b holds values * (b + 1)."""
    v = np.asarray(values, dtype=np.float32)
    return np.stack([v * (b + 1) for b in range(bands)], axis=1)[:, :, None, None]


def _avail(flags: list[bool]) -> np.ndarray:
    return np.asarray(flags, dtype=bool)[:, None, None]


def test_linear_uneven_days() -> None:
    refl = _pixel_series([0.1, 9.0, 9.0, 0.7], bands=2)
    out = linear(refl, _avail([True, False, False, True]), np.array([0, 2, 10, 12]))
    assert out.dtype == np.float32 and out.shape == refl.shape
    # day 2: 0.1 + 0.6 * 2/12 = 0.2; day 10: 0.1 + 0.6 * 10/12 = 0.6
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.1, 0.2, 0.6, 0.7], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1, 0, 0], [0.2, 0.4, 1.2, 1.4], rtol=1e-6)


def test_linear_constant_extrapolation() -> None:
    refl = _pixel_series([5.0, 0.3, 5.0, 0.5, 5.0])
    out = linear(refl, _avail([False, True, False, True, False]), np.array([0, 1, 4, 5, 9]))
    # before the first available date: 0.3; after the last: 0.5; day 4: 0.3 + 0.2 * 3/4
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.3, 0.3, 0.45, 0.5, 0.5], rtol=1e-6)


def test_linear_matches_np_interp_and_keeps_inputs() -> None:
    rng = np.random.default_rng(0)
    t, c, h, w = 9, 3, 4, 5
    refl = rng.random((t, c, h, w), dtype=np.float32)
    available = rng.random((t, h, w)) < 0.4
    available[:, 0, 0] = False  # never available: covered by the fallback test
    days = np.cumsum(rng.integers(1, 15, size=t))
    out = linear(refl, available, days)
    assert np.array_equal(out[np.broadcast_to(available[:, None], out.shape)],
                          refl[np.broadcast_to(available[:, None], refl.shape)])  # fmt: skip
    for y in range(h):
        for x in range(w):
            a = available[:, y, x]
            if not a.any():
                continue
            for b in range(c):
                ref = np.interp(days, days[a], refl[a, b, y, x])
                np.testing.assert_allclose(out[:, b, y, x], ref, rtol=1e-5, atol=1e-6)


def test_closest_ties_go_to_earlier_date() -> None:
    refl = _pixel_series([0.1, 9.0, 0.9])
    avail = _avail([True, False, True])
    assert closest(refl, avail, np.array([0, 5, 10]))[1, 0, 0, 0] == pytest.approx(0.1)
    assert closest(refl, avail, np.array([0, 4, 10]))[1, 0, 0, 0] == pytest.approx(0.1)
    assert closest(refl, avail, np.array([0, 6, 10]))[1, 0, 0, 0] == pytest.approx(0.9)
    out = closest(refl, avail, np.array([0, 6, 10]))
    np.testing.assert_array_equal(out[[0, 2], 0, 0, 0], refl[[0, 2], 0, 0, 0])


def test_closest_extrapolates_from_nearest() -> None:
    refl = _pixel_series([9.0, 0.2, 9.0, 0.4, 9.0])
    out = closest(refl, _avail([False, True, False, True, False]), np.array([0, 3, 5, 6, 20]))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.2, 0.2, 0.4, 0.4, 0.4], rtol=1e-6)


def test_last_carries_the_latest_clear_value_forward() -> None:
    refl = _pixel_series([9.0, 0.2, 9.0, 9.0, 0.4, 9.0])
    avail = _avail([False, True, False, False, True, False])
    out = last(refl, avail, np.array([0, 3, 5, 6, 20, 30]))
    # Before the first clear date: the first one; then the latest clear one, not the nearest.
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.2, 0.2, 0.2, 0.2, 0.4, 0.4], rtol=1e-6)
    never = last(refl, _avail([False] * 6), np.arange(6))
    assert np.isnan(never).all()


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_as_models_match_the_functions(name: str) -> None:
    rng = np.random.default_rng(3)
    refl = rng.random((2, 5, 3, 4, 4)).astype(np.float32)
    avail = rng.random((2, 5, 4, 4)) > 0.4
    doy = np.array([[300, 330, 360, 20, 50], [10, 40, 70, 100, 130]])
    model = build_model(name, in_channels=3)
    assert not is_trainable(model) and count_parameters(model) == 0
    x = torch.from_numpy(refl * avail[:, :, None])
    out = model(x, torch.from_numpy(avail), torch.from_numpy(doy)).numpy()
    days = np.array([[300, 330, 360, 385, 415], [10, 40, 70, 100, 130]])  # year wrap unrolled
    for b in range(2):
        expect = BASELINES[name](refl[b], avail[b], days[b])
        np.testing.assert_allclose(out[b], expect, rtol=1e-6, atol=1e-6)
    pad = torch.tensor([[False, False, False, False, True]] * 2)
    padded = model(x, torch.from_numpy(avail), torch.from_numpy(doy), pad).numpy()
    assert (padded[:, 4] == 0).all()
    np.testing.assert_allclose(
        padded[1, :4], BASELINES[name](refl[1, :4], avail[1, :4], days[1, :4]), atol=1e-6
    )


def test_mean_is_a_composite_at_every_date() -> None:
    refl = _pixel_series([0.1, 9.0, 0.3, 0.8], bands=2)
    out = mean_baseline(refl, _avail([True, False, True, True]), np.arange(4))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.4] * 4, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1, 0, 0], [0.8] * 4, rtol=1e-6)


def test_least_cloudy_uses_the_clearest_date_with_closest_fallback() -> None:
    t, h, w = 3, 2, 2
    refl = (np.arange(t, dtype=np.float32)[:, None, None, None] + 1) * np.ones((1, 1, h, w))
    refl[:, :, 1, 1] += 10  # distinguish the pixel that falls back
    available = np.zeros((t, h, w), dtype=bool)
    available[0, 0, 0] = True  # date 0: 1/4 available
    available[1] = True
    available[1, 1, 1] = False  # date 1: 3/4 available -> the least cloudy date
    available[2, 1, 1] = True
    out = least_cloudy(refl.astype(np.float32), available, np.array([0, 10, 14]))
    expected = np.array([[2.0, 2.0], [2.0, 13.0]])  # (1, 1) from date 2 (closest to day 10)
    for k in range(t):
        np.testing.assert_allclose(out[k, 0], expected)


def test_pixels_never_available_get_date_then_tile_means() -> None:
    t, c, h, w = 3, 2, 1, 3
    refl = np.zeros((t, c, h, w), dtype=np.float32)
    refl[:, 0] = [[[0.1, 0.3, 9.0]], [[0.5, 9.0, 9.0]], [[9.0, 9.0, 9.0]]]
    refl[:, 1] = 2 * refl[:, 0]
    available = np.zeros((t, h, w), dtype=bool)
    available[0, 0, :2] = True
    available[1, 0, 0] = True  # date 2: no available pixel at all; pixel x=2 never
    # date 0 mean: 0.2; date 1 mean: 0.5; date 2 -> tile mean (0.1 + 0.3 + 0.5) / 3 = 0.3
    for name, fn in BASELINES.items():
        out = fn(refl, available, np.array([0, 1, 2]))
        np.testing.assert_allclose(out[:, 0, 0, 2], [0.2, 0.5, 0.3], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(out[:, 1, 0, 2], [0.4, 1.0, 0.6], rtol=1e-6, err_msg=name)


def test_no_available_pixel_at_all_stays_nan() -> None:
    refl = np.ones((2, 1, 2, 2), dtype=np.float32)
    for fn in BASELINES.values():
        assert np.isnan(fn(refl, np.zeros((2, 2, 2), bool), np.array([0, 1]))).all()


def test_non_finite_inputs_are_not_used() -> None:
    refl = _pixel_series([0.2, np.nan, 0.6])
    out = linear(refl, _avail([True, True, True]), np.array([0, 1, 2]))
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.2, 0.4, 0.6], rtol=1e-6)


def test_get_baseline_and_unknown_names() -> None:
    assert get_baseline("linear") is linear
    assert set(BASELINES) == {
        "linear", "closest", "last", "mean", "least_cloudy", "linear_offset", "harmonic",
        "whittaker",
    }  # fmt: skip
    with pytest.raises(ConfigError, match=r"'nope'.*linear"):
        get_baseline("nope")


def test_a_baseline_runs_on_a_tile_series_across_the_year_end() -> None:
    s2 = np.full((3, 2, 2, 2), 1000, dtype=np.uint16)
    s2[1] = 3000
    s2[2] = 2000
    tile = TileSeries(
        tile="t0",
        split="test",
        s2=s2,
        mask=np.zeros((3, 2, 2), np.uint8),
        dates=["2020-12-30", "2021-01-01", "2021-01-03"],
        doy=np.array([365, 1, 3], np.int16),
        crs=CRS.from_epsg(32633),
        transform=Affine(10, 0, 0, 0, -10, 0),
    )
    available = np.ones((3, 2, 2), bool)
    available[1] = False
    out = linear(tile.reflectance(), available, tile.days)
    np.testing.assert_allclose(out[1], 0.15, rtol=1e-6)  # midway across the year end
