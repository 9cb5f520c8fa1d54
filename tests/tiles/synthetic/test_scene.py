"""Tests of cloudfree.tiles.synthetic.scene: what the sensor sees of surface, air and clouds."""

from __future__ import annotations

import numpy as np

from cloudfree.bands import CLEAR, CLOUD, S2_L1C_BANDS, SHADOW, THIN_CLOUD, to_dn
from cloudfree.tiles.synthetic.scene import PATH_REFLECTANCE, build_scene, compose, render_date
from cloudfree.tiles.synthetic.surface import LANDCOVER_CLASSES, landcover_map, surface_reflectance
from cloudfree.tiles.synthetic.weather import (
    acquisition_dates,
    cloud_layers,
    cloud_spectrum,
    date_conditions,
)

from .specs import DEFAULT_LANDCOVER, synthetic_spec

B = {name: i for i, name in enumerate(S2_L1C_BANDS)}


def test_cirrus_lifts_b10() -> None:
    shape = (64, 64)
    layers = cloud_layers(shape, 0.5, np.random.default_rng(1), cirrus=True)
    lc = np.full(shape, LANDCOVER_CLASSES.index("grassland"), dtype=np.uint8)
    surface = surface_reflectance(lc, 100)
    obs = compose(surface, layers, cloud_spectrum(cirrus=True))
    thin = layers.mask == THIN_CLOUD
    assert obs[B["B10"]][thin].mean() > 5 * obs[B["B10"]][~thin].mean()


def test_compose_brightens_clouds_darkens_shadows_keeps_clear() -> None:
    shape = (96, 96)
    lc, _ = landcover_map(shape, DEFAULT_LANDCOVER, np.random.default_rng(0))
    surface = surface_reflectance(lc, 180)
    layers = cloud_layers(shape, 0.4, np.random.default_rng(0), shadow_shift=(5, 5))
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
