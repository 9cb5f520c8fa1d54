"""Tests of cloudfree.tiles.synthetic.weather: clouds, shadows and the mask errors of real
masks; dates (revisit phase, outages, excluded dates) and their conditions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import numpy as np
import pytest

from cloudfree.bands import CLEAR, CLOUD, SHADOW, THIN_CLOUD
from cloudfree.errors import ConfigError
from cloudfree.tiles.synthetic.weather import (
    CLOUD_ALPHA_MIN,
    SHADOW_MAX_DARKENING,
    SHADOW_MIN_ALPHA,
    THICK_ALPHA,
    acquisition_dates,
    cloud_layers,
    date_conditions,
    revisits,
)

from .specs import MADAGASCAR, synthetic_spec


@pytest.mark.parametrize("cover", [0.0, 0.05, 0.3, 0.7, 1.0])
def test_cloud_layers_cover_and_mask_consistency(cover: float) -> None:
    shape = (96, 128)
    layers = cloud_layers(
        shape, cover, np.random.default_rng(5), mask_errors=False, shadow_shift=(6, -9)
    )
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


def _cast(alpha: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """Opacity of the cloud that casts onto each pixel: the one at (row - dy, col - dx);
    NaN where that cloud lies outside the grid."""
    dy, dx = shift
    h, w = alpha.shape
    src = np.full(alpha.shape, np.nan)
    src[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = alpha[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return src


def test_shadows_follow_the_sun_shift() -> None:
    shape = (128, 128)
    a, d, m = cloud_layers(
        shape, 0.2, np.random.default_rng(9), mask_errors=False, shadow_shift=(8, -6)
    )
    src = _cast(a, (8, -6))
    assert np.array_equal(src[8:, :-6], a[:-8, 6:])  # the cloud at (row - 8, col + 6)
    inner = ~np.isnan(src)
    shadow = inner & (d > 0)
    assert shadow.sum() > 100
    np.testing.assert_allclose(d[shadow], SHADOW_MAX_DARKENING * src[shadow], rtol=1e-6)
    np.testing.assert_array_equal(shadow, inner & (src >= SHADOW_MIN_ALPHA) & (a == 0))
    np.testing.assert_array_equal((m == SHADOW)[inner], shadow[inner])
    assert not d[a > 0].any()  # no shadow drawn under a cloud


@pytest.mark.parametrize("cover", [0.05, 0.3, 0.7])
def test_mask_errors_leave_faint_clouds_and_shadow_edges_labelled_clear(cover: float) -> None:
    shape = (96, 128)

    def layers(mask_errors: bool):
        rng = np.random.default_rng(5)
        return cloud_layers(shape, cover, rng, mask_errors=mask_errors, shadow_shift=(6, -9))

    exact, loose = layers(False), layers(True)
    drawn = {k: (v.alpha > 0) | (v.darkening > 0) for k, v in (("exact", exact), ("loose", loose))}
    assert not (drawn["exact"] & (exact.mask == CLEAR)).any()  # without: every drawn pixel
    missed = drawn["loose"] & (loose.mask == CLEAR)
    assert missed.mean() > 0.2 * cover  # with: a halo and shadow edges the mask misses
    # faint: below the labelled opacity and darkening (up to float32 rounding)
    assert (loose.alpha[missed] <= np.float32(CLOUD_ALPHA_MIN)).all()
    assert (loose.darkening[missed] <= np.float32(SHADOW_MAX_DARKENING * SHADOW_MIN_ALPHA)).all()
    assert (loose.alpha[missed] > 0).any()
    # the labelled clouds stay those of the cover
    for cls in (CLOUD, THIN_CLOUD):
        np.testing.assert_array_equal(loose.mask == cls, exact.mask == cls)
    assert np.isin(loose.mask, (CLOUD, THIN_CLOUD)).mean() == pytest.approx(cover, abs=0.005)


@pytest.mark.parametrize("cover", [0.05, 0.3, 0.7])
def test_mask_errors_keep_the_labelled_shadows(cover: float) -> None:
    """Mask errors add what the mask misses; a shadow under a faint halo (opacity below
    the labelled CLOUD_ALPHA_MIN) is still a shadow, drawn and labelled as without them."""

    def layers(mask_errors: bool):
        rng = np.random.default_rng(5)
        return cloud_layers((96, 128), cover, rng, mask_errors=mask_errors, shadow_shift=(6, -9))

    exact, loose = layers(False), layers(True)
    assert (exact.mask == SHADOW).any()
    np.testing.assert_array_equal(loose.mask == SHADOW, exact.mask == SHADOW)
    # drawn from a lighter cast on (0.15), wherever no cloud is labelled
    src = _cast(loose.alpha, (6, -9))
    inner = ~np.isnan(src) & (np.abs(src - 0.15) > 1e-6)  # float32 opacities: no borderline
    drawn = (src >= 0.15) & ~np.isin(loose.mask, (CLOUD, THIN_CLOUD))
    np.testing.assert_array_equal((loose.darkening > 0)[inner], drawn[inner])
    edges = (loose.darkening > 0) & (loose.mask == CLEAR)  # light edges, drawn unlabelled
    assert edges.any()


@pytest.mark.parametrize("mask_errors", [False, True])
def test_cirrus_is_thin_and_casts_no_shadow(mask_errors: bool) -> None:
    layers = cloud_layers(
        (64, 64), 0.5, np.random.default_rng(1), mask_errors=mask_errors, cirrus=True
    )
    assert set(np.unique(layers.mask)) == {CLEAR, THIN_CLOUD}
    assert 0 < layers.alpha.max() <= 0.35 and not layers.darkening.any()
    labelled_from = 0.05 if mask_errors else 0.0  # the faint veil is missed with mask errors
    np.testing.assert_array_equal(layers.mask == THIN_CLOUD, layers.alpha > labelled_from)
    assert ((layers.alpha > 0) & (layers.mask == CLEAR)).any() == mask_errors


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


def _phases(days: list[dt.date], start: dt.date) -> list[int]:
    """Offsets p (0..4) of the 5-day grids start + p + 5 k (jittered by a day) that hold
    every one of ``days``."""
    return [p for p in range(5) if all(((d - start).days - p) % 5 in (4, 0, 1) for d in days)]


def test_acquisition_dates_on_jittered_revisit_grid() -> None:
    start = dt.date(2021, 3, 1)
    phases = set()
    for seed in range(8):
        spec = synthetic_spec(seed=seed, n_dates=25, start="2021-03-01", end="2021-12-31")
        days = acquisition_dates(spec)
        assert len(days) == 25 == len(set(days)) and days == sorted(days)
        assert days[0] >= start and days[-1] <= dt.date(2021, 12, 31)
        assert all(isinstance(d, dt.date) for d in days)
        found = _phases(days, start)
        assert found, f"seed {seed}: dates off every 5-day grid"
        phases.update(found)
        assert acquisition_dates(spec) == days  # the seed's dates
    assert len(phases) >= 3  # the revisit phase differs per seed


def test_nearly_every_revisit_slot_can_be_used() -> None:
    # 2021: 73 slots of 5 days; the phase and the jitter at both ends cost at most 2
    for seed in range(6):
        spec = synthetic_spec(seed=seed, n_dates=70, outages=0.0)
        days = acquisition_dates(spec)
        assert len(set(days)) == 70 and days == sorted(days)
        assert all((b - a).days >= 3 for a, b in itertools.pairwise(days))


def test_outages_remove_revisits_in_runs() -> None:
    for share in (0.15, 0.4):
        ok = revisits(50_000, np.random.default_rng(3), share)
        assert (~ok).mean() == pytest.approx(share, abs=0.02)
        # lengths of the runs of lost slots: 3 on average (a lost slot alone would be 1.2-1.7)
        edges = np.flatnonzero(np.diff(np.r_[1, ok.astype(int), 1]))
        runs = edges[1::2] - edges[::2]
        assert runs.sum() == (~ok).sum()
        assert runs.mean() == pytest.approx(3.0, abs=0.3)
    assert revisits(100, np.random.default_rng(3), 0.0).all()
    # acquisitions of a long period with outages: fewer of the slots, still on the grid
    spec = synthetic_spec(n_dates=100, start="2015-01-01", end="2022-12-31", outages=0.4)
    days = acquisition_dates(spec)
    assert len(set(days)) == 100 and _phases(days, dt.date(2015, 1, 1))


def test_excluded_dates_are_never_acquired() -> None:
    spec = synthetic_spec(n_dates=12)
    taken = [d.isoformat() for d in acquisition_dates(spec)]
    again = acquisition_dates(synthetic_spec(n_dates=12, exclude_dates=taken))
    assert len(again) == 12 and not {d.isoformat() for d in again} & set(taken)
    # a whole month left out: no date in it
    march = [str(dt.date(2021, 3, 1) + dt.timedelta(days=i)) for i in range(31)]
    for seed in range(5):
        days = acquisition_dates(synthetic_spec(seed=seed, n_dates=40, exclude_dates=march))
        assert len(days) == 40 and not any(d.month == 3 for d in days)


def test_too_few_revisits_name_n_dates() -> None:
    # everything after January 20 excluded: at most 4 revisits remain
    rest = [str(dt.date(2021, 1, 21) + dt.timedelta(days=i)) for i in range(345)]
    spec = synthetic_spec(n_dates=12, exclude_dates=rest, outages=0.0)
    with pytest.raises(ConfigError, match=r"^synthetic\.n_dates: 12 dates asked, but seed 0 has"):
        acquisition_dates(spec)
    lossy = synthetic_spec(n_dates=60, outages=0.8)  # about 15 of 73 revisits remain
    with pytest.raises(ConfigError, match=r"n_dates: 60 dates asked.*outages \(0\.8\)"):
        acquisition_dates(lossy)
