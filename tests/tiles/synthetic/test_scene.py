"""Tests of cloudfree.tiles.synthetic.scene: what the sensor sees of surface, air and clouds;
land-cover change events, haze, native band resolutions and mask errors."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from cloudfree.bands import CLEAR, CLOUD, S2_L1C_BANDS, SHADOW, THIN_CLOUD, to_dn
from cloudfree.tiles.synthetic.changes import (
    BURN,
    KINDS,
    WET_DAYS,
    Change,
    apply_changes,
    changed_area,
)
from cloudfree.tiles.synthetic.scene import (
    PATH_REFLECTANCE,
    block_mean,
    build_scene,
    compose,
    haze_field,
    render_date,
)
from cloudfree.tiles.synthetic.surface import (
    LANDCOVER_CLASSES,
    SPECTRA,
    landcover_map,
    surface_reflectance,
)
from cloudfree.tiles.synthetic.weather import (
    CloudLayers,
    acquisition_dates,
    cloud_layers,
    cloud_spectrum,
    date_conditions,
)

from .specs import DEFAULT_LANDCOVER, synthetic_spec

B = {name: i for i, name in enumerate(S2_L1C_BANDS)}


def test_cirrus_lifts_b10() -> None:
    shape = (64, 64)
    layers = cloud_layers(shape, 0.5, np.random.default_rng(1), mask_errors=False, cirrus=True)
    lc = np.full(shape, LANDCOVER_CLASSES.index("grassland"), dtype=np.uint8)
    surface = surface_reflectance(lc, 100)
    obs = compose(surface, layers, cloud_spectrum(cirrus=True))
    thin = layers.mask == THIN_CLOUD
    assert obs[B["B10"]][thin].mean() > 5 * obs[B["B10"]][~thin].mean()


def test_compose_brightens_clouds_darkens_shadows_keeps_clear() -> None:
    shape = (96, 96)
    lc, _ = landcover_map(shape, DEFAULT_LANDCOVER, np.random.default_rng(0))
    surface = surface_reflectance(lc, 180)
    layers = cloud_layers(
        shape, 0.4, np.random.default_rng(0), mask_errors=False, shadow_shift=(5, 5)
    )
    obs = compose(surface, layers, cloud_spectrum(False, 0.05), gain=1.02, aot=0.2)
    ground = 1.02 * surface + 0.2 * PATH_REFLECTANCE[:, None, None]
    m = layers.mask
    np.testing.assert_allclose(obs[:, m == CLEAR], ground[:, m == CLEAR], rtol=1e-5)
    for band in ("B02", "B04", "B08"):
        o, g = obs[B[band]], ground[B[band]]
        margin = 0.1 if band != "B08" else 0.0  # vegetation is bright in the NIR too
        assert (o[m == CLOUD] > g[m == CLOUD] + margin).all(), band
        assert (o[m == THIN_CLOUD] > g[m == THIN_CLOUD]).all(), band
        assert (o[m == SHADOW] < 0.95 * g[m == SHADOW]).all(), band
    # Thick clouds are bright and flat in the VNIR.
    vnir = obs[[B["B02"], B["B03"], B["B04"], B["B08"]]][:, layers.alpha > 0.95]
    assert vnir.min() > 0.45 and np.ptp(vnir.mean(axis=1)) < 0.05


def test_to_dn_range() -> None:
    """The reflectance -> DN conversion of the rendered dates."""
    dn = to_dn(np.array([-0.1, 0.0, 0.00004, 0.1234, 7.0, np.nan]))
    assert dn.dtype == np.uint16
    assert dn.tolist() == [1, 1, 1, 1234, 65535, 1]


def test_render_date_shapes_and_a_seed_changes_the_scene() -> None:
    spec = synthetic_spec(tiles_x=3, tiles_y=1, tile_size=32, overlap=8, n_dates=3)
    scene = build_scene(spec)
    assert scene.landcover.shape == spec.region_shape == (32, 80)
    day = acquisition_dates(spec)[0]
    dn, mask = render_date(spec, scene, date_conditions(spec, day))
    assert dn.shape == (13, 32, 80) and dn.dtype == np.uint16 and dn.min() >= 1
    assert mask.shape == (32, 80) and mask.dtype == np.uint8
    other = synthetic_spec(tiles_x=3, tiles_y=1, tile_size=32, overlap=8, n_dates=3, seed=1)
    assert not np.array_equal(build_scene(other).landcover, scene.landcover)


# Native pixel size of each L1C band (Sentinel-2 MSI): 10, 20 or 60 m.
NATIVE = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
SMALL = {"tiles_x": 3, "tiles_y": 1, "tile_size": 32, "overlap": 8, "n_dates": 3}  # 32 x 80


def _blocks_constant(band: np.ndarray, factor: int) -> bool:
    """Every factor x factor block from the grid's corner (partial ones at the edges) holds
    one value."""
    h, w = band.shape
    return all(
        np.ptp(band[r : r + factor, c : c + factor]) == 0
        for r in range(0, h, factor)
        for c in range(0, w, factor)
    )


def test_block_mean_by_hand() -> None:
    band = np.arange(15, dtype=np.float32).reshape(3, 5)
    expected = np.array([[3, 3, 5, 5, 6.5], [3, 3, 5, 5, 6.5], [10.5, 10.5, 12.5, 12.5, 14]])
    out = block_mean(band, 2)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected)
    np.testing.assert_array_equal(block_mean(band, 1), band)


@pytest.mark.parametrize("native", [True, False])
def test_native_resolution_of_the_bands(native: bool) -> None:
    spec = synthetic_spec(**SMALL, native_resolution=native, cloudiness=0.3)
    scene = build_scene(spec)
    for day in acquisition_dates(spec)[:2]:
        dn, _ = render_date(spec, scene, date_conditions(spec, day))
        assert dn.shape == (13, 32, 80)  # 60 m blocks: 5 full and a partial row of blocks
        for i, band in enumerate(S2_L1C_BANDS):
            metres = NATIVE[band]
            if metres == 10:
                assert not _blocks_constant(dn[i], 2), band  # full 10 m detail
            else:
                assert _blocks_constant(dn[i], metres // 10) == native, band
            if metres == 20 and native:
                assert not _blocks_constant(dn[i], 6), band  # 20 m, not coarser


def test_haze_varies_in_space_around_the_dates_aot() -> None:
    spec = synthetic_spec(**SMALL, haze=0.5)
    ratios = []
    for day in [dt.date(2021, 1, 1) + dt.timedelta(days=9 * i) for i in range(40)]:
        cond = date_conditions(spec, day)
        field = haze_field(spec, cond)
        assert field.shape == spec.region_shape and (field > 0).all()
        log = np.log(field / cond.aot)  # haze * (unit-std field) - haze**2 / 2
        assert log.std() == pytest.approx(0.5, rel=1e-5)
        assert log.mean() == pytest.approx(-(0.5**2) / 2, abs=1e-5)
        # smooth: neighbouring pixels see nearly the same air
        assert np.corrcoef(log[:, :-1].ravel(), log[:, 1:].ravel())[0, 1] > 0.9
        ratios.append(field.mean() / cond.aot)
        np.testing.assert_array_equal(field, haze_field(spec, cond))  # the date's own field
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.1)  # mean aot
    flat = dataclasses.replace(spec, haze=0.0)
    cond = date_conditions(flat, dt.date(2021, 5, 3))
    assert haze_field(flat, cond) == cond.aot  # one value for the whole date
    assert isinstance(haze_field(flat, cond), float)


def test_compose_with_a_haze_field() -> None:
    shape = (8, 10)
    surface = surface_reflectance(np.full(shape, LANDCOVER_CLASSES.index("forest")), 150)
    clear = CloudLayers(
        np.zeros(shape, np.float32), np.zeros(shape, np.float32), np.zeros(shape, np.uint8)
    )
    aot = np.linspace(0.05, 0.6, shape[0] * shape[1]).reshape(shape)
    obs = compose(surface, clear, cloud_spectrum(False, 0.05), gain=1.0, aot=aot)
    expected = surface + aot[None] * PATH_REFLECTANCE[:, None, None]
    np.testing.assert_allclose(obs, expected, rtol=1e-5)
    scalar = compose(surface, clear, cloud_spectrum(False, 0.05), aot=0.3)
    np.testing.assert_allclose(scalar, surface + 0.3 * PATH_REFLECTANCE[:, None, None], rtol=1e-5)


def _surface(shape: tuple[int, int] = (4, 6)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lc = np.full(shape, LANDCOVER_CLASSES.index("forest"))
    surface = surface_reflectance(lc, 180)
    texture = np.full(shape, 1.1, np.float32)
    mask = np.zeros(shape, bool)
    mask[1:3, 2:5] = True
    return surface, texture, mask


def _applied(kind: str, age: int, duration: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) surfaces of an event of ``kind`` ``age`` days after it started."""
    surface, texture, mask = _surface()
    out = surface.copy()
    apply_changes(out, [Change(kind, mask, start=1000, duration=duration)], 1000 + age, texture)
    return surface, out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_change_starts_on_its_day_and_only_where_it_is(kind: str) -> None:
    _, _, mask = _surface()
    before, early = _applied(kind, -1)
    np.testing.assert_array_equal(early, before)  # the day before: nothing yet
    before, after = _applied(kind, 0)
    np.testing.assert_array_equal(after[:, ~mask], before[:, ~mask])  # the rest unchanged
    assert (np.abs(after[:, mask] - before[:, mask]).max(axis=0) > 0.02).all()


def test_what_each_change_leaves() -> None:
    _, texture, mask = _surface()
    tex = texture[mask][None]
    soil, grass, water, urban = (SPECTRA[k][:, None] for k in ("soil", "green_grass", "water",
                                                               "urban"))  # fmt: skip
    # a clear-cut is bare soil on its day, then grass grows back (70 % of it by its end)
    before, cut = _applied("clearcut", 0)
    np.testing.assert_allclose(cut[:, mask], soil * tex, rtol=1e-6)
    _, regrown = _applied("clearcut", 100)
    np.testing.assert_allclose(regrown[:, mask], (0.3 * soil + 0.7 * grass) * tex, rtol=1e-6)
    # a fire leaves a burn scar that fades into what was there
    before, burnt = _applied("fire", 0)
    np.testing.assert_allclose(burnt[:, mask], BURN[:, None] * tex, rtol=1e-6)
    b = {name: i for i, name in enumerate(S2_L1C_BANDS)}
    assert (burnt[b["B12"], mask] > burnt[b["B08"], mask]).all()  # SWIR above NIR
    assert (before[b["B12"], mask] < before[b["B08"], mask]).all()
    _, half = _applied("fire", 50)
    np.testing.assert_allclose(half[:, mask], 0.5 * BURN[:, None] * tex + 0.5 * before[:, mask],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(_applied("fire", 100)[1], before, rtol=1e-6)
    # a flood is mostly water; the soil stays wet for WET_DAYS after, then dries
    _, flooded = _applied("flood", 10)
    np.testing.assert_allclose(flooded[:, mask], 0.85 * water + 0.15 * before[:, mask], rtol=1e-5)
    assert (flooded[b["B03"], mask] > flooded[b["B08"], mask]).all()  # water: NDWI > 0
    _, wet = _applied("flood", 100)
    np.testing.assert_allclose(wet[:, mask], 0.75 * before[:, mask], rtol=1e-5)
    np.testing.assert_array_equal(_applied("flood", 100 + WET_DAYS)[1], before)
    # construction: cleared ground, then a building
    _, cleared = _applied("construction", 99)
    np.testing.assert_allclose(cleared[:, mask], soil * tex, rtol=1e-6)
    _, built = _applied("construction", 100)
    np.testing.assert_allclose(built[:, mask], urban * tex, rtol=1e-6)


def test_rendered_change_happens_on_its_day() -> None:
    spec = synthetic_spec(**SMALL, landcover={"forest": 1.0}, native_resolution=False)
    scene = build_scene(spec)
    mask = np.zeros(spec.region_shape, bool)
    mask[8:20, 20:40] = True
    start = dt.date(2021, 6, 1)
    changed = dataclasses.replace(scene, changes=[Change("clearcut", mask, start.toordinal(), 300)])
    unchanged = dataclasses.replace(scene, changes=[])
    b = {name: i for i, name in enumerate(S2_L1C_BANDS)}
    for day in (start - dt.timedelta(days=1), start, start + dt.timedelta(days=40)):
        cond = date_conditions(spec, day)
        dn, _ = render_date(spec, changed, cond, clouds=False)
        ref, _ = render_date(spec, unchanged, cond, clouds=False)
        np.testing.assert_array_equal(dn[:, ~mask], ref[:, ~mask])  # the rest as it was
        if day < start:
            np.testing.assert_array_equal(dn, ref)
            continue
        red, nir = (dn[b[k]].astype(float) for k in ("B04", "B08"))
        ndvi = (nir - red) / (nir + red)
        ref_red, ref_nir = (ref[b[k]].astype(float) for k in ("B04", "B08"))
        ref_ndvi = (ref_nir - ref_red) / (ref_nir + ref_red)
        assert np.median(ref_ndvi[mask]) > 0.5  # forest
        assert np.median(ndvi[mask]) < 0.3  # cut: bare soil and the first grass


def test_planned_changes_cover_the_rate_on_eligible_land() -> None:
    spec = synthetic_spec(change_rate=0.1, seed=3)
    scene = build_scene(spec)
    assert scene.changes
    start = dt.date.fromisoformat(spec.start).toordinal()
    end = dt.date.fromisoformat(spec.end).toordinal()
    union = np.zeros(spec.region_shape, int)
    for ch in scene.changes:
        covers, (low, high) = KINDS[ch.kind]
        codes = [LANDCOVER_CLASSES.index(c) for c in covers]
        assert np.isin(scene.landcover[ch.mask], codes).all(), ch.kind
        assert start + 15 <= ch.start < end - 15
        assert low <= ch.duration <= high
        union += ch.mask
    assert union.max() == 1  # no pixel changes twice
    share = changed_area(scene.changes, spec.region_shape)
    assert share == pytest.approx(union.mean())
    assert share >= 0.1 * (end - start) / 365.25  # the rate of a year, reached
    assert share < 0.2
    assert not build_scene(dataclasses.replace(spec, change_rate=0.0)).changes


def _cloudy_date(spec) -> dt.date:
    """A date of the spec with clouds, no cirrus and clear sky left."""
    for day in acquisition_dates(spec):
        cond = date_conditions(spec, day)
        if not cond.cirrus and 0.15 < cond.cover < 0.5:
            return day
    raise AssertionError("no suitable date")


def test_rendered_mask_errors_are_drawn_but_labelled_clear() -> None:
    values = {**SMALL, "n_dates": 20, "cloudiness": 0.4, "native_resolution": False}
    for mask_errors in (False, True):
        spec = synthetic_spec(**values, mask_errors=mask_errors)
        scene = build_scene(spec)
        cond = date_conditions(spec, _cloudy_date(spec))
        dn, mask = render_date(spec, scene, cond)
        clean, _ = render_date(spec, scene, cond, clouds=False)
        touched = (dn != clean).any(axis=0)  # something of the weather drawn on the pixel
        missed = touched & (mask == CLEAR)
        assert missed.any() == mask_errors
        assert touched[mask != CLEAR].all()  # whatever is labelled is drawn
        if mask_errors:
            assert missed.mean() > 0.02
