"""Tests of cloudfree.tiles.synthetic.weather: clouds, shadows, dates and their conditions."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from cloudfree.bands import CLEAR, CLOUD, SHADOW, THIN_CLOUD
from cloudfree.tiles.synthetic.weather import (
    SHADOW_MAX_DARKENING,
    SHADOW_MIN_ALPHA,
    THICK_ALPHA,
    acquisition_dates,
    cloud_layers,
    date_conditions,
)

from .specs import MADAGASCAR, synthetic_spec


@pytest.mark.parametrize("cover", [0.0, 0.05, 0.3, 0.7, 1.0])
def test_cloud_layers_cover_and_mask_consistency(cover: float) -> None:
    shape = (96, 128)
    layers = cloud_layers(shape, cover, np.random.default_rng(5), shadow_shift=(6, -9))
    a, d, m = layers
    assert (a > 0).mean() == pytest.approx(cover, abs=0.005)
    assert a.min() >= 0 and a.max() <= 1 and d.min() >= 0 and d.max() <= 0.6
    np.testing.assert_array_equal(m == CLOUD, a >= THICK_ALPHA)
    np.testing.assert_array_equal(m == THIN_CLOUD, (a > 0) & (a < THICK_ALPHA))
    np.testing.assert_array_equal(m == SHADOW, d > 0)
    np.testing.assert_array_equal(m == CLEAR, (a == 0) & (d == 0))
    if 0 < cover < 1:
        assert (m == CLOUD).any() and (m == THIN_CLOUD).any() and (m == SHADOW).any()
        # Thick cores, thin edges: the median cloudy pixel is opaque.
        assert np.median(a[a > 0]) > 0.6


def test_shadows_follow_the_sun_shift() -> None:
    shape = (128, 128)
    a, d, _ = cloud_layers(shape, 0.2, np.random.default_rng(9), shadow_shift=(8, -6))
    # Opacity of the cloud that casts onto each pixel: the one at (row - 8, col + 6).
    src = np.full(shape, np.nan)
    src[8:, :-6] = a[:-8, 6:]
    inner = ~np.isnan(src)
    shadow = inner & (d > 0)
    assert shadow.sum() > 100
    np.testing.assert_allclose(d[shadow], SHADOW_MAX_DARKENING * src[shadow], rtol=1e-6)
    assert (d[inner & (src >= SHADOW_MIN_ALPHA) & (a == 0)] > 0).all()
    assert not d[a > 0].any()  # no shadow drawn under a cloud


def test_cirrus_is_thin_and_casts_no_shadow() -> None:
    layers = cloud_layers((64, 64), 0.5, np.random.default_rng(1), cirrus=True)
    assert set(np.unique(layers.mask)) == {CLEAR, THIN_CLOUD}
    assert 0 < layers.alpha.max() <= 0.35 and not layers.darkening.any()


def test_weather_follows_beta_with_mean_cloudiness() -> None:
    spec = synthetic_spec(cloudiness=0.4, **MADAGASCAR)
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(0, 730, 2)]
    conds = [date_conditions(spec, d) for d in days]
    cover = np.array([c.cover for c in conds])
    assert cover.mean() == pytest.approx(0.4, abs=0.05)
    assert (cover < 0.1).mean() > 0.1 and (cover > 0.8).mean() > 0.05  # clear and overcast
    assert 0.1 < np.mean([c.cirrus for c in conds]) < 0.3
    lengths = [np.hypot(*c.shadow_shift) for c in conds]
    assert 2 <= min(lengths) and max(lengths) <= 16
    assert all(0.9 < c.gain < 1.1 and 0 < c.aot < 2 for c in conds)
    # Same date, same weather, whatever else is requested; seed changes it.
    assert date_conditions(spec, days[3]) == conds[3]
    other = date_conditions(dataclasses.replace(spec, seed=1), days[3])
    assert other.cover != conds[3].cover
    # the extremes (1 is beyond the schema's maximum, the kernel still takes it)
    for c in (0.0, 1.0):
        assert date_conditions(dataclasses.replace(spec, cloudiness=c), days[0]).cover == c


def test_acquisition_dates_on_jittered_revisit_grid() -> None:
    spec = synthetic_spec(n_dates=40, start="2021-03-01", end="2021-12-31")
    days = acquisition_dates(spec)
    start = dt.date(2021, 3, 1)
    assert len(days) == 40 == len(set(days)) and days == sorted(days)
    assert days[0] >= start and days[-1] <= dt.date(2021, 12, 31)
    assert all((d - start).days % 5 in (4, 0, 1) for d in days)
    # Every revisit slot can be used.
    full = synthetic_spec(n_dates=3, start="2021-01-01", end="2021-01-11")
    assert len(acquisition_dates(full)) == 3
