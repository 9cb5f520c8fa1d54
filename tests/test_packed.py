"""Tests of cloudfree.packed: the packed format's reader, its checks and its norm sums."""

import h5py
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW
from cloudfree.errors import InputDataError
from cloudfree.packed import (
    TileSeries,
    compute_norm_stats,
    decode_strings,
    iter_tiles,
    norm_from_sums,
    norm_sums,
    open_packed,
    read_meta,
    read_tile,
    stored_norm,
    validate_layout,
)

from .pack.sample import pack, region


@pytest.fixture
def manifest(tmp_path):
    return region(tmp_path / "tiles")


def test_open_packed_checks_version(tmp_path, manifest):
    path = pack(manifest, tmp_path / "old.h5")
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = 1
    with pytest.raises(InputDataError, match=r"format_version 1 is older.*pack it again"):
        open_packed(path)


def test_foreign_and_truncated_files_are_refused(tmp_path, manifest):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(InputDataError, match="not a cloudfree packed file"):
        open_packed(foreign)
    good = pack(manifest, tmp_path / "good.h5")
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"cut.h5"):
        validate_layout(cut)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputDataError, match="truncated, or not HDF5"):
        open_packed(text)
    with pytest.raises(InputDataError, match="does not exist"):
        open_packed(tmp_path / "missing.h5")
    with open_packed(good) as h5, pytest.raises(InputDataError, match=r"no tile 'z'"):
        read_tile(h5, "z")


def test_validate_layout_checks_shapes(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5")
    validate_layout(dest)
    with h5py.File(dest, "a") as h5:
        del h5["tiles/c/date_class"]
        h5["tiles/c/date_class"] = np.zeros(3, np.uint8)
    with pytest.raises(InputDataError, match=r"where: tile c date_class has shape \(3,\)"):
        validate_layout(dest, where="where")


def test_norm_stats_stored_match_pixels(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5")
    stored = compute_norm_stats([dest])
    with h5py.File(dest, "a") as h5:
        assert h5.attrs["norm_split"] == "train" and h5.attrs["norm_count"] > 0
        del h5.attrs["norm_sum"]  # without the stored sums the pixels are read
    with open_packed(dest) as h5:
        assert stored_norm(h5) is None
    # the same sums, in the same order: the same numbers to the last bit
    np.testing.assert_array_equal(stored, compute_norm_stats([dest]))


def test_norm_stats_from_the_raw_pixels(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5")
    tiles = [t for t in iter_tiles(dest) if t.split == "train"]
    refl = np.concatenate(
        [
            (t.s2.transpose(1, 0, 2, 3)[:, (t.mask == 0) & (t.s2 != 0).any(axis=1)]) / 10000.0
            for t in tiles
        ],
        axis=1,
    )
    mean, std = compute_norm_stats([dest])
    np.testing.assert_allclose(mean, refl.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, refl.std(axis=1), rtol=1e-9)
    with pytest.raises(InputDataError, match="no clear pixels in the 'nosuch' tiles"):
        compute_norm_stats([dest], "nosuch")


def test_norm_sums_by_hand():
    s2 = np.array([[[[10, 20], [0, 40]]], [[[50, 60], [70, 80]]]], np.uint16)  # (2, 1, 2, 2)
    mask = np.array([[[CLEAR, CLOUD], [CLEAR, CLEAR]], [[SHADOW, CLEAR], [MASK_NODATA, CLEAR]]])
    n, s1, sq = norm_sums(s2, mask.astype(np.uint8), 0, 10.0)
    # clear with data: 10 and 40 (0 is nodata), then 60 and 80 -> 1, 4, 6, 8 in reflectance
    assert n == 4
    assert s1.tolist() == [19.0] and sq.tolist() == [1 + 16 + 36 + 64]
    mean, std = norm_from_sums(n, s1, sq)
    assert mean.tolist() == [4.75] and std[0] == pytest.approx(np.std([1, 4, 6, 8]))
    assert norm_from_sums(0, np.zeros(1), np.zeros(1))[1].tolist() == [1e-4]


def test_clear_excludes_cloud_shadow_and_nodata(tmp_path, manifest):
    tile = next(iter_tiles(pack(manifest, tmp_path / "r.h5")))
    assert not tile.clear[:, 0, :].any()  # the shadow row
    assert tile.clear.sum() == tile.valid.sum() - (tile.mask != 0).sum()
    refl = tile.reflectance()
    assert refl.dtype == np.float32 and np.nanmax(refl) < 1.0


def test_tile_series_by_hand():
    s2 = np.array([[[[0, 5]]], [[[7, 9]]]], np.uint16)  # (2, 1, 1, 2); 0 is nodata
    mask = np.array([[[CLEAR, CLOUD]], [[MASK_NODATA, CLEAR]]], np.uint8)
    tile = TileSeries(
        tile="t", split="train", s2=s2, mask=mask, dates=["2020-12-30", "2021-01-04"],
        doy=np.array([365, 4], np.int16), crs=CRS.from_epsg(32632),
        transform=Affine.identity(), date_class=np.array([1, 0], np.uint8),
    )  # fmt: skip
    assert tile.valid.tolist() == [[[False, True]], [[False, True]]]
    assert tile.clear.tolist() == [[[False, False]], [[False, True]]]
    assert tile.valid_fraction.tolist() == [0.5, 0.5]
    assert tile.days.tolist() == [0, 5]
    assert tile.dates_of("clear") == ["2021-01-04"] and tile.dates_of("unusable") == []
    refl = tile.reflectance()
    assert np.isnan(refl[0, 0, 0, 0]) and refl[1, 0, 0, 1] == pytest.approx(9 / 10000)


def test_read_meta_refuses_files_with_other_bands(tmp_path, manifest):
    a = pack(manifest, tmp_path / "a.h5")
    b = tmp_path / "b.h5"
    b.write_bytes(a.read_bytes())
    with h5py.File(b, "a") as h5:
        h5.attrs["bands"] = [f"X{i}" for i in range(13)]
    meta = read_meta([a])
    assert meta.regions == ["testland"] and meta.scale == 10000.0
    assert [(t.tile, t.split, t.dates, t.height) for t in meta.tiles][:2] == [
        ("a", "train", 4, 16), ("b", "train", 4, 16),
    ]  # fmt: skip
    with pytest.raises(InputDataError, match=r"b\.h5: bands \['X0'"):
        read_meta([a, b])


def test_decode_strings():
    assert decode_strings([b"B02", "B03", np.str_("B04")]) == ["B02", "B03", "B04"]
