"""Tests of cloudfree.tiles.grid: tile windows, strips, spatial-block splits, the DN scaling,
the size limits and the cloud-mask value check."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.tiles.grid import (
    Grid,
    Tiling,
    bad_mask_values,
    block_splits,
    check_mask_file,
    check_memory,
    check_tile_count,
    mask_nodata,
    physical_memory,
    scaled_to_dn,
    tile_count,
    tile_strips,
    tile_windows,
)


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


def test_tile_count_is_the_number_of_windows_without_making_them():
    for width, height, size, overlap in [(100, 70, 32, 8), (64, 64, 32, 0), (31, 90, 32, 0),
                                         (1000, 257, 256, 0), (97, 97, 16, 15)]:  # fmt: skip
        wins = tile_windows(width, height, size, overlap) if min(width, height) >= size else {}
        assert tile_count(width, height, size, overlap) == len(wins)
    assert tile_count(10**9, 10**9, 8, 0) == (10**9 // 8) ** 2  # arithmetic, not a list


def test_a_grid_of_more_than_max_tiles_is_refused_naming_the_region_and_key():
    check_tile_count(64, 64, 32, 0, 4, "regions.x.folder")  # exactly four tiles
    with pytest.raises(
        ConfigError,
        match=r"^regions\.x: .* 96 x 64 px makes 6 tiles.*regions\.x\.folder\.max_tiles \(4\)",
    ):
        check_tile_count(96, 64, 32, 0, 4, "regions.x.folder")
    tiling = Tiling(tile_size=32, overlap=0, min_valid=0, block=1, val_fraction=0,
                    test_fraction=0, seed=0, max_tiles=4)  # fmt: skip
    with pytest.raises(ConfigError, match=r"6 tiles .* max_tiles \(4\)"):
        tiling.windows(96, 64)


def test_memory_above_the_key_or_the_machine_is_refused():
    check_memory(1e9, 2.0, "regions.x.synthetic.max_memory_gb", "a date", "regions.x")
    with pytest.raises(
        ConfigError, match=r"^regions\.x: a date would need about 3\.0 GB.*max_memory_gb \(2\)"
    ):
        check_memory(3e9, 2.0, "regions.x.synthetic.max_memory_gb", "a date", "regions.x")
    have = physical_memory()
    if have is not None:
        with pytest.raises(ConfigError, match="this machine's"):
            check_memory(have * 2, have * 4 / 1e9, "k.max_memory_gb", "a date", "regions.x")


@pytest.mark.parametrize(
    ("values", "nodata", "bad"),
    [
        (np.array([0, 1, 2, 3, 255], np.uint8), None, []),
        (np.array([0, 1, -1], np.int16), None, [-1]),
        (np.array([0, 1, -1], np.int16), -1, []),
        (np.array([0, 300, 256], np.uint16), None, [256, 300]),
        (np.array([0.0, 1.0, 3.0], np.float32), None, []),
        (np.array([0.0, 0.6, 1.0], np.float32), None, [pytest.approx(0.6)]),
        (np.array([0.0, np.nan], np.float32), None, [pytest.approx(np.nan, nan_ok=True)]),
        (np.array([0.0, np.nan], np.float32), float("nan"), []),
        (np.array([True, False]), None, []),
    ],
)
def test_mask_values_are_checked_in_their_own_dtype(values, nodata, bad):
    assert bad_mask_values(values, nodata) == bad


def test_a_mask_file_is_checked_block_by_block(tmp_path, monkeypatch):
    from cloudfree.tiles import grid as grid_module

    monkeypatch.setattr(grid_module, "MASK_CHUNK_PX", 64)  # 4 rows of 16 px a block
    prof = geotiff_profile(crs="EPSG:32632", transform=Affine(10, 0, 0, 0, -10, 0), width=16,
                           height=16, count=1, dtype="int16", nodata=-1)  # fmt: skip
    mask = np.zeros((16, 16), np.int16)
    mask[:2] = -1
    write_raster(tmp_path / "m.tif", mask, prof)
    assert check_mask_file(tmp_path / "m.tif") == (-1, "float32")
    mask[15, 15] = 4
    write_raster(tmp_path / "m.tif", mask, prof)
    with pytest.raises(
        InputDataError, match=r"m\.tif \(date x\): cloud mask \(int16\) holds values \[4\]"
    ):
        check_mask_file(tmp_path / "m.tif", "date x")
    assert mask_nodata(None) == mask_nodata(0) == 255 and mask_nodata(-1) == -1
