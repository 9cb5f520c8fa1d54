"""Tests of cloudfree.tiles.synthetic.surface: land cover, class spectra and phenology."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.tiles.synthetic.surface import (
    LANDCOVER_CLASSES,
    greenness,
    landcover_map,
    season_offset,
    surface_reflectance,
)

from .specs import DEFAULT_LANDCOVER, MADAGASCAR, synthetic_spec

B = {name: i for i, name in enumerate(S2_L1C_BANDS)}


def ndvi(refl: np.ndarray) -> np.ndarray:
    return (refl[B["B08"]] - refl[B["B04"]]) / (refl[B["B08"]] + refl[B["B04"]])


def uniform(cls: str, doy: float, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """Mean spectrum of a map of one class (no texture)."""
    lc = np.full(shape, LANDCOVER_CLASSES.index(cls), dtype=np.uint8)
    return surface_reflectance(lc, doy).mean(axis=(1, 2))


def test_classes_are_the_schemas() -> None:
    assert sorted(LANDCOVER_CLASSES) == sorted(DEFAULT_LANDCOVER)


@pytest.mark.parametrize(
    "weights",
    [
        DEFAULT_LANDCOVER,
        {"water": 0.5, "cropland": 0.5},
        {"forest": 0.1, "grassland": 0.3, "urban": 0.6},
    ],
)
def test_landcover_weights_exact_and_absent_classes(weights: dict[str, float]) -> None:
    lc, parcels = landcover_map((120, 150), weights, np.random.default_rng(1))
    assert lc.dtype == np.uint8 and parcels.shape == lc.shape
    total = sum(weights.values())
    frac = np.bincount(lc.ravel(), minlength=len(LANDCOVER_CLASSES)) / lc.size
    for code, name in enumerate(LANDCOVER_CLASSES):
        assert frac[code] == pytest.approx(weights.get(name, 0.0) / total, abs=0.005), name


def test_landcover_structure() -> None:
    lc, parcels = landcover_map((160, 160), DEFAULT_LANDCOVER, np.random.default_rng(2))
    codes = {n: i for i, n in enumerate(LANDCOVER_CLASSES)}
    # Cropland comes in whole parcels (cut only by the water, forest and settlements that
    # claimed pixels before it): nearly all crop pixels sit in parcels whose remaining
    # area is >90% crop, and most in parcels that are mostly crop outright.
    pid = parcels.ravel()
    crop = (lc == codes["cropland"]).ravel()
    later = np.isin(lc, [codes[c] for c in ("cropland", "bare", "grassland")]).ravel()
    share = np.bincount(pid, crop) / np.maximum(np.bincount(pid, later), 1)
    assert np.mean(share[pid[crop]] > 0.9) > 0.9
    outright = np.bincount(pid, crop) / np.maximum(np.bincount(pid), 1)
    assert np.mean(outright[pid[crop]] > 0.6) > 0.7
    # Parcels are rectangles of plausible field size (5..64 px = 50..640 m).
    for pid in np.unique(parcels)[:20]:
        rows, cols = np.nonzero(parcels == pid)
        area = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        assert area == rows.size and min(np.ptp(rows), np.ptp(cols)) + 1 <= 64
    # Water forms a few smooth lakes, not speckle: blobs of >= 20 px hold > 90% of it and
    # the boundary is a small part of the area.
    water = lc == codes["water"]
    labels, _ = ndimage.label(water, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    assert sizes[sizes >= 20].sum() > 0.9 * sizes.sum()
    assert (water & ~ndimage.binary_erosion(water)).sum() < 0.4 * water.sum()


def test_class_spectra_distinct_and_plausible() -> None:
    summer = {c: uniform(c, 195) for c in LANDCOVER_CLASSES}
    assert ndvi(summer["forest"]) > 0.5
    assert ndvi(summer["cropland"]) > 0.5
    assert ndvi(summer["water"]) < 0
    assert summer["water"][B["B08"]] < 0.05 and summer["water"][B["B11"]] < 0.02
    bare = summer["bare"]
    assert bare[B["B02"]] < bare[B["B04"]] < bare[B["B08"]] < bare[B["B11"]]  # rises to SWIR
    urban = summer["urban"][[B[b] for b in ("B02", "B03", "B04", "B08", "B11")]]
    assert urban.min() > 0.1 and urban.max() / urban.min() < 1.7  # bright, flat-ish
    green = summer["forest"]
    assert green[B["B06"]] > 2 * green[B["B04"]] and green[B["B08"]] > green[B["B05"]]  # red edge
    for name, spec in summer.items():
        assert 0.001 <= spec[B["B10"]] <= 0.01, name
    names = list(summer)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert np.abs(summer[a] - summer[b]).max() > 0.03, (a, b)


def test_phenology() -> None:
    amp = {c: ndvi(uniform(c, 195)) - ndvi(uniform(c, 15)) for c in ("cropland", "grassland")}
    forest = [ndvi(uniform("forest", d)) for d in range(0, 365, 15)]
    assert amp["cropland"] > 0.5  # sown/harvested: soil in winter, full canopy in summer
    assert 0.15 < amp["grassland"] < amp["cropland"]
    assert np.ptp(forest) < 0.1 and min(forest) > 0.5  # evergreen
    # The year wraps: no jump between 31 Dec and 1 Jan.
    assert greenness("cropland", 365.0) == pytest.approx(greenness("cropland", 0.0))
    # Harvest is faster than green-up.
    g = greenness("cropland", np.arange(365.0))
    up, down = np.diff(g).max(), -np.diff(g).min()
    assert down > 1.5 * up
    # A per-pixel phase delays the curve by that many days.
    lc = np.full((1, 2), LANDCOVER_CLASSES.index("cropland"), dtype=np.uint8)
    r = surface_reflectance(lc, 150.0, phase=np.array([[0.0, 20.0]]))
    np.testing.assert_allclose(r[:, 0, 1], uniform("cropland", 130.0), rtol=1e-5)


def test_season_is_shifted_half_a_year_south_of_the_equator() -> None:
    assert season_offset(synthetic_spec(**MADAGASCAR)) == 182.0
    assert season_offset(synthetic_spec(crs="EPSG:32632", origin=[600000.0, 5400000.0])) == 0.0
