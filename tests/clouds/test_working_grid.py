"""Tests of cloudfree.clouds.working_grid: the factor of a working resolution, block means
over valid pixels and the bilinear way back, on sizes that are not multiples of the factor."""

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin

from cloudfree.clouds.working_grid import (
    coarse_shape,
    downsample,
    pixel_size_metres,
    tile_factor,
    upsample,
    working_factor,
)
from cloudfree.errors import InputDataError

RNG = np.random.default_rng(3)


def test_factor_of_a_resolution():
    assert working_factor(None, 10.0) == 1  # null: the tile's own grid
    assert working_factor(40, 10.0) == 4
    assert working_factor(60, 20.0) == 3
    assert working_factor(40, 73.6) == 1  # coarser pixels than the working grid: at least 1
    assert working_factor(160, 73.6) == 2
    with pytest.raises(ValueError, match="positive"):
        working_factor(40, 0.0)


def test_degrees_are_converted_at_the_centre_latitude():
    equator = pixel_size_metres(1e-3, 1e-3, geographic=True, centre_latitude=0.0)
    assert equator == pytest.approx(111.195, abs=0.01)
    # at 60 degrees a degree of longitude is half a degree of latitude
    north = pixel_size_metres(1e-3, 1e-3, geographic=True, centre_latitude=60.0)
    assert north == pytest.approx(equator * np.sqrt(0.5), rel=1e-9)
    assert pixel_size_metres(10, 20, geographic=False) == pytest.approx(np.sqrt(200))
    assert pixel_size_metres(10, 10, geographic=False, unit_metres=0.3048) == pytest.approx(3.048)


def _profile(crs, res, width=512, height=856, top=-15.58):
    return {"crs": crs, "transform": from_origin(46.16, top, res[0], res[1]), "width": width,
            "height": height}  # fmt: skip


def test_tile_factor_of_a_raster():
    # the Betsiboka scene's grid: EPSG:4326, about 74 m pixels at 15.9 degrees south
    betsiboka = _profile(CRS.from_epsg(4326), (0.00068359375, 0.000665887850467288))
    assert [tile_factor(r, betsiboka, "b.tif") for r in (None, 40, 60, 160)] == [1, 1, 1, 2]
    utm = _profile(CRS.from_epsg(32736), (10, 10))
    assert [tile_factor(r, utm, "u.tif") for r in (None, 10, 40, 60, 160)] == [1, 1, 4, 6, 16]
    feet = _profile(CRS.from_epsg(2263), (32.8084, 32.8084))  # US feet: 10 m pixels
    assert tile_factor(40, feet, "f.tif") == 4
    with pytest.raises(InputDataError, match=r"x\.tif: .*no CRS.*clouds\.detector\.resolution"):
        tile_factor(40, _profile(None, (10, 10)), "x.tif")
    assert tile_factor(None, _profile(None, (10, 10)), "x.tif") == 1


def test_factor_one_is_the_identity():
    image = RNG.random((9, 7, 3)).astype(np.float32)
    valid = RNG.random((9, 7)) > 0.3
    means, share = downsample(image, valid, 1)
    assert means is image and np.array_equal(share, valid.astype(np.float32))
    values = RNG.random((9, 7)).astype(np.float32)
    assert upsample(values, share, (9, 7), 1) is values


def test_block_means_of_sizes_not_a_multiple_of_the_factor():
    image = RNG.random((10, 7, 2)).astype(np.float32)
    valid = np.ones((10, 7), bool)
    means, share = downsample(image, valid, 4)
    assert means.shape == (3, 2, 2) and share.shape == (3, 2) == coarse_shape((10, 7), 4)
    assert means.dtype == np.float32
    np.testing.assert_allclose(means[0, 0], image[:4, :4].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(means[2, 1], image[8:, 4:].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_array_equal(share, 1.0)  # a partial block is full over its own area


def test_nodata_pixels_are_left_out_of_the_means():
    image = RNG.random((8, 8, 1)).astype(np.float32)
    valid = np.ones((8, 8), bool)
    valid[:2, :2] = False
    image[:2, :2] = 1e6  # nodata values must not reach any mean
    valid[4:, 4:] = False  # a whole block without valid pixels
    means, share = downsample(image, valid, 4)
    np.testing.assert_allclose(means[0, 0, 0], image[:4, :4, 0][valid[:4, :4]].mean(), rtol=1e-6)
    assert share[0, 0] == pytest.approx(12 / 16) and share[1, 1] == 0 and means[1, 1, 0] == 0


def test_upsample_keeps_constants_and_linear_ramps():
    shape, factor = (11, 9), 4
    h, w = coarse_shape(shape, factor)
    weight = np.ones((h, w), np.float32)
    const = upsample(np.full((h, w), 0.3, np.float32), weight, shape, factor)
    assert const.shape == shape and const.dtype == np.float32
    np.testing.assert_allclose(const, 0.3, rtol=1e-6)
    # a ramp along the rows sampled at full block centres comes back exactly between them
    centres = np.arange(3) * factor + (factor - 1) / 2  # rows 1.5, 5.5, 9.5 of 12
    grid = np.repeat(centres[:, None], w, axis=1).astype(np.float32)
    ramp = upsample(grid, np.ones_like(grid), (12, 9), factor)
    np.testing.assert_allclose(ramp[2:10, 3], np.arange(2, 10), atol=1e-5)
    np.testing.assert_allclose(ramp[:2, 3], 1.5, atol=1e-6)  # constant past the end centres


def test_upsample_does_not_spread_nodata_blocks():
    shape, factor = (8, 12), 4
    values = np.full((2, 3), 0.2, np.float32)
    weight = np.ones((2, 3), np.float32)
    values[1, 2], weight[1, 2] = 0.9, 0.0  # a block without valid pixels
    out = upsample(values, weight, shape, factor)
    np.testing.assert_allclose(out[:, :8], 0.2, rtol=1e-6)  # beside it: its value is not used
    # inside it: its neighbours' value, or its own where it is the only block around
    np.testing.assert_allclose(out[4:6, 8:10], 0.2, rtol=1e-6)
    np.testing.assert_allclose(out[6:, 10:], 0.9, rtol=1e-6)
    all_nodata = upsample(values, np.zeros_like(weight), shape, factor)
    assert np.isfinite(all_nodata).all() and all_nodata.max() == pytest.approx(0.9)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="expected"):
        downsample(np.zeros((4, 4, 2)), np.ones((4, 5), bool), 2)
    with pytest.raises(ValueError, match="working grid"):
        upsample(np.zeros((2, 2)), np.ones((2, 2)), (8, 8), 2)
