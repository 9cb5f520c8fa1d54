import h5py
import numpy as np
import pytest
import rasterio

from cloudfree.errors import InputDataError
from cloudfree.io import read_raster, write_raster
from cloudfree.packing import (
    FORMAT_VERSION,
    evaluation_gaps,
    iter_tiles,
    open_packed,
    pack_region,
    read_tile,
    tile_names,
)

from .series import write_series

DATES = ["2021-01-05", "2021-02-04", "2021-03-06", "2021-12-27"]


@pytest.fixture
def manifest(tmp_path):
    splits = {"a": "train", "b": "train", "c": "val", "d": "test"}
    return write_series(tmp_path / "tiles", splits, DATES)


def test_pack_roundtrip_keeps_pixels_and_georeference(tmp_path, manifest):
    dest = pack_region(manifest, tmp_path / "r.h5", eval_seed=3)
    with open_packed(dest) as h5:
        assert h5.attrs["format_version"] == FORMAT_VERSION
        assert h5.attrs["region"] == "testland"
        assert tile_names(h5) == ["a", "b", "c", "d"]
        assert tile_names(h5, "test") == ["d"]
        assert h5["tiles/a/s2"].chunks == (1, 13, 16, 16)
        assert h5["tiles/a/s2"].compression == "gzip"
        tile = read_tile(h5, "c")
    row = manifest[(manifest.tile == "c") & (manifest.date == DATES[1])].iloc[0]
    img, prof = read_raster(row.image)
    np.testing.assert_array_equal(tile.s2[1], img)
    assert tile.dates == DATES
    assert tile.doy.tolist() == [5, 35, 65, 361]
    assert tile.days.tolist() == [0, 30, 60, 356]
    assert tile.crs == prof["crs"]
    assert tile.transform == prof["transform"]
    assert tile.split == "val"


def test_gaps_only_on_evaluation_tiles_and_deterministic(tmp_path, manifest):
    a = pack_region(manifest, tmp_path / "a.h5", eval_seed=1, eval_date_fraction=1.0)
    b = pack_region(manifest, tmp_path / "b.h5", eval_seed=1, eval_date_fraction=1.0)
    ta, tb = list(iter_tiles(a)), list(iter_tiles(b))
    assert [t.gap is None for t in ta] == [True, True, False, False]
    for x, y in zip(ta, tb, strict=True):
        if x.gap is not None:
            np.testing.assert_array_equal(x.gap, y.gap)
            assert x.gap.any()


def test_evaluation_gaps_come_from_other_tiles():
    masks = {"a": np.zeros((3, 4, 4), np.uint8), "b": np.zeros((3, 4, 4), np.uint8)}
    masks["a"][:, :2] = 1  # half cloudy: a donor for b
    gaps = evaluation_gaps(masks, ["b"], seed=0, date_fraction=1.0)
    assert gaps["b"][:, :2].all() and not gaps["b"][:, 2:].any()


def test_clear_excludes_cloud_shadow_and_nodata(tmp_path, manifest):
    tile = next(iter_tiles(pack_region(manifest, tmp_path / "r.h5")))
    assert not tile.clear[:, 0, :].any()  # the shadow row
    assert tile.clear.sum() == tile.valid.sum() - (tile.mask != 0).sum()
    refl = tile.reflectance()
    assert refl.dtype == np.float32 and np.nanmax(refl) < 1.0


def test_wrong_band_count_names_file_and_date(tmp_path, manifest):
    row = manifest.iloc[2]
    with rasterio.open(row.image) as src:
        prof = dict(src.profile)
    write_raster(row.image, np.ones((4, 16, 16), np.uint16), prof)
    with pytest.raises(InputDataError, match=rf"{row.tile}, date {row.date}.*4 bands"):
        pack_region(manifest, tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()
    assert not list(tmp_path.glob(".r.h5*"))


def test_mask_on_another_grid_is_refused(tmp_path, manifest):
    row = manifest.iloc[0]
    with rasterio.open(row["mask"]) as src:
        prof = dict(src.profile)
    write_raster(row["mask"], np.zeros((8, 8), np.uint8), {**prof, "width": 8, "height": 8})
    with pytest.raises(InputDataError, match="not on the image grid"):
        pack_region(manifest, tmp_path / "r.h5")


def test_open_packed_checks_version(tmp_path):
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["format_version"] = 0
    with pytest.raises(InputDataError, match="format_version"):
        open_packed(path)
