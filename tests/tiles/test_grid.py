"""Tests of cloudfree.tiles.grid: tile windows, strips, spatial-block splits, the DN scaling."""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from cloudfree.tiles.grid import Grid, block_splits, scaled_to_dn, tile_strips, tile_windows


def test_windows_cover_the_region_and_blocks_keep_neighbours_together():
    wins = tile_windows(100, 70, 32, 8)
    assert max(w.col_off + w.width for w in wins.values()) == 100
    assert max(w.row_off + w.height for w in wins.values()) == 70
    assert all(w.width == w.height == 32 for w in wins.values())
    splits = block_splits(tile_windows(128, 128, 32, 0), block=2, val_fraction=0.25,
                          test_fraction=0.25, seed=0)  # fmt: skip
    assert set(splits.values()) == {"train", "val", "test"}
    for r in (0, 2):
        for c in (0, 2):  # the 2 x 2 tiles of one block share a split
            block = {splits[f"r{r + i}c{c + j}"] for i in (0, 1) for j in (0, 1)}
            assert len(block) == 1


def test_tile_strips_cover_each_tile_once():
    wins = tile_windows(100, 70, 32, 8)
    strips = tile_strips(wins)
    assert [w.row_off for w, _ in strips] == sorted({w.row_off for w in wins.values()})
    assert sorted(t for _, tiles in strips for t in tiles) == sorted(wins)
    for strip, tiles in strips:
        assert (strip.col_off, strip.width, strip.height) == (0, 100, 32)
        assert all(wins[t].row_off == strip.row_off for t in tiles)


def test_fewer_than_three_blocks_go_to_train_then_test():
    two = tile_windows(64, 32, 32, 0)
    assert sorted(
        block_splits(two, block=1, val_fraction=0.2, test_fraction=0.2, seed=0).values()
    ) == [
        "test",
        "train",
    ]
    one = tile_windows(32, 32, 32, 0)
    assert block_splits(one, block=1, val_fraction=0.2, test_fraction=0.2, seed=0) == {
        "r0c0": "train"
    }


def test_a_window_of_a_grid_keeps_its_pixels_in_place():
    grid = Grid(CRS.from_epsg(32632), Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5400000.0), 80, 32)
    tile = grid.window(Window(48, 16, 32, 16))
    assert tile.transform == Affine(10.0, 0.0, 600480.0, 0.0, -10.0, 5399840.0)
    assert tile.bounds == (600480.0, 5399680.0, 600800.0, 5399840.0)
    assert (tile.width, tile.height) == (32, 16)


def test_scaled_to_dn_applies_scale_and_offset_and_marks_nodata():
    values = np.array([[[0.05, 0.1234, 9.0, np.nan]]], np.float32)
    valid = np.array([[True, True, True, False]])
    before = values.copy()
    dn = scaled_to_dn(values, valid, 1.0, -0.01)
    assert dn.dtype == np.uint16
    assert dn.tolist() == [[[400, 1134, 65535, 0]]]
    np.testing.assert_array_equal(values, before)  # the input is left as it was
