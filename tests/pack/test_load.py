"""Tests of cloudfree.pack.load: a tile's GeoTIFF series from its manifest rows."""

import numpy as np
import pytest
import rasterio

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.io import read_raster, write_raster
from cloudfree.pack.load import band_names, image_bands, load_series, load_tile, optional_paths

from .sample import DATES, pack


def _rewrite_bands(manifest, bands, descriptions):
    """Replace every image of the manifest by ``len(bands)`` bands with ``descriptions``."""
    for row in manifest.itertuples():
        img, prof = read_raster(row.image)
        write_raster(row.image, img[: len(bands)], prof, band_names=descriptions)


def test_load_tile_reads_the_rows_of_one_tile(manifest):
    rows = manifest[manifest.tile == "c"].sort_values("date")
    tile = load_tile("c", rows, S2_L1C_BANDS)
    assert tile.tile == "c" and tile.split == "val" and tile.dates == DATES
    assert tile.s2.shape == (4, 13, 16, 16) and tile.mask.shape == (4, 16, 16)
    assert tile.mask.dtype == np.uint8 and tile.date_class is None
    assert tile.doy.tolist() == [5, 35, 65, 361]
    for t, row in enumerate(rows.itertuples()):
        np.testing.assert_array_equal(tile.s2[t], read_raster(row.image)[0])
    assert tile.sources == {"image": rows["image"].tolist(), "mask": rows["mask"].tolist()}
    s2, mask = load_series(rows, S2_L1C_BANDS)
    np.testing.assert_array_equal(s2, tile.s2)
    np.testing.assert_array_equal(mask, tile.mask)


def test_optional_paths_all_or_none_but_s1_may_have_gaps(manifest):
    rows = manifest[manifest.tile == "a"]
    assert optional_paths(rows, "s1") is None
    assert optional_paths(rows.assign(s1=np.nan), "s1") is None
    assert optional_paths(rows.assign(s1=[" x.tif "] * 4), "s1") == ["x.tif"] * 4
    # Sentinel-1 may be missing on some dates (no acquisition near them)
    some = ["x.tif", "", "x.tif", np.nan]
    assert optional_paths(rows.assign(s1=some), "s1") == ["x.tif", "", "x.tif", ""]
    assert optional_paths(rows.assign(probability=np.nan), "probability") is None
    partial = rows.assign(probability=["p.tif", "", "p.tif", "p.tif"])
    with pytest.raises(InputDataError, match=rf"tile a, date {DATES[1]} has no probability file"):
        optional_paths(partial, "probability")


def test_image_bands(tmp_path, manifest):
    path = manifest.iloc[0].image
    assert image_bands(path) == S2_L1C_BANDS  # 13 bands without descriptions
    img, prof = read_raster(path)
    write_raster(path, img, prof, band_names=[f"b{i}" for i in range(13)])
    assert image_bands(path)[-1] == "b12"
    write_raster(path, img[:2], prof)
    with pytest.raises(InputDataError, match=rf"{path} \(tile a\): 2 bands.*name every band"):
        image_bands(path, "tile a")
    write_raster(path, img[:2], prof, band_names=["X", "X"])
    with pytest.raises(InputDataError, match="not unique"):
        image_bands(path)
    with pytest.raises(InputDataError, match="cannot read"):
        image_bands(tmp_path / "missing.tif")
    assert band_names("x.tif", 2, [" B02", "B03 "]) == ("B02", "B03")


def test_unnamed_bands_and_band_count_changes_are_refused(tmp_path, manifest):
    _rewrite_bands(manifest, ["B02", "B03"], None)
    first = manifest.sort_values(["tile", "date"]).iloc[0]
    with pytest.raises(InputDataError, match=rf"{first.image} \(tile a, date {first.date}\)"):
        pack(manifest, tmp_path / "r.h5")
    _rewrite_bands(manifest, ["B02", "B03"], ["B02", "B03"])
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img[:1], prof, band_names=["B02"])
    with pytest.raises(InputDataError, match=rf"{row.image}.*1 bands, expected 2 \(B02, B03\)"):
        pack(manifest, tmp_path / "r.h5")


def test_a_date_with_its_bands_in_another_order_is_reordered(manifest):
    _rewrite_bands(manifest, ["B02", "B03"], ["B02", "B03"])
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img[::-1], prof, band_names=["B03", "B02"])
    rows = manifest[manifest.tile == row.tile].sort_values("date")
    s2, _ = load_series(rows, ["B02", "B03"])
    np.testing.assert_array_equal(s2[rows["date"].tolist().index(row.date)], img)
    # a date of more bands gives the region's, by name
    write_raster(row.image, np.concatenate([img[::-1], img[:1]]), prof,
                 band_names=["B03", "B02", "B04"])  # fmt: skip
    np.testing.assert_array_equal(load_series(rows, ["B02", "B03"])[0], s2)


def test_mask_values_are_checked_in_the_files_dtype(manifest):
    row = manifest.iloc[1]
    mask, prof = read_raster(row["mask"])
    wide = mask[0].astype(np.int16)
    wide[0, :] = -1
    write_raster(row["mask"], wide, {**prof, "dtype": "int16", "nodata": -1})
    rows = manifest[manifest.tile == row.tile].sort_values("date")
    _, masks = load_series(rows, S2_L1C_BANDS)
    assert masks.dtype == np.uint8 and (masks[1, 0] == 255).all()
    np.testing.assert_array_equal(masks[1, 1:], mask[0, 1:])
    wide[1, 1] = 7
    write_raster(row["mask"], wide, {**prof, "dtype": "int16", "nodata": -1})
    with pytest.raises(InputDataError, match=r"cloud mask \(int16\) holds values \[7\].*nodata -1"):
        load_series(rows, S2_L1C_BANDS)


def test_wrong_band_count_names_file_and_date(manifest):
    row = manifest.iloc[2]
    with rasterio.open(row.image) as src:
        prof = dict(src.profile)
    write_raster(row.image, np.ones((4, 16, 16), np.uint16), prof)
    rows = manifest[manifest.tile == row.tile].sort_values("date")
    with pytest.raises(InputDataError, match=rf"{row.tile}, date {row.date}.*4 bands"):
        load_series(rows, S2_L1C_BANDS)


def test_mask_on_another_grid_is_refused(tmp_path, manifest):
    row = manifest.iloc[0]
    with rasterio.open(row["mask"]) as src:
        prof = dict(src.profile)
    write_raster(row["mask"], np.zeros((8, 8), np.uint8), {**prof, "width": 8, "height": 8})
    with pytest.raises(InputDataError, match="not on the image grid"):
        pack(manifest, tmp_path / "r.h5")


def test_a_layer_of_the_wrong_shape_names_its_file(tmp_path, manifest):
    rows = manifest[manifest.tile == "a"].sort_values("date")
    _, prof = read_raster(rows.iloc[0].image)
    small = {**prof, "dtype": "float32", "nodata": None, "width": 8, "height": 8}
    prob = write_raster(tmp_path / "p.tif", np.zeros((8, 8), np.float32), small)
    rows = rows.assign(probability=str(prob))
    with pytest.raises(InputDataError, match=r"p\.tif \(tile a, date .*cloud probability of sh"):
        load_tile("a", rows, S2_L1C_BANDS)
