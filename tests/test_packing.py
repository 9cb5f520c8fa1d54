"""Tests of cloudfree.packing."""

import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import read_raster, write_raster
from cloudfree.pack.check import validate
from cloudfree.pack.gaps import evaluation_gaps, train_overlap
from cloudfree.pack.load import classify_dates, image_bands
from cloudfree.pack.writer import pack_region
from cloudfree.packed import (
    FORMAT_VERSION,
    compute_norm_stats,
    iter_tiles,
    open_packed,
    packed_bands,
    read_tile,
    tile_names,
)

from .series import write_series

BLOSC_ID = 32001

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
        assert h5["tiles/a/mask"].chunks == (1, 16, 16)
        assert str(BLOSC_ID) in h5["tiles/a/s2"]._filters  # Blosc (LZ4, byte shuffle)
        assert h5.attrs["compression"] == "blosc_lz4hc"
        assert list(h5.attrs["bands"]) == list(S2_L1C_BANDS)
        tiles = {n: read_tile(h5, n) for n in tile_names(h5)}
    for name, tile in tiles.items():
        rows = manifest[manifest.tile == name].sort_values("date")
        assert tile.dates == DATES
        assert tile.sources["image"] == rows["image"].tolist()
        assert tile.sources["mask"] == rows["mask"].tolist()
        assert tile.probability is None and tile.s1 is None
        for t, row in enumerate(rows.itertuples()):
            img, prof = read_raster(row.image)
            msk, _ = read_raster(row.mask)
            assert tile.s2.dtype == img.dtype
            np.testing.assert_array_equal(tile.s2[t], img)
            np.testing.assert_array_equal(tile.mask[t], msk[0])
            assert tile.crs == prof["crs"]
            assert tile.transform == prof["transform"]
            assert tile.nodata == prof["nodata"]
        assert tile.split == rows["split"].iloc[0]
    tile = tiles["c"]
    assert tile.doy.tolist() == [5, 35, 65, 361]
    assert tile.days.tolist() == [0, 30, 60, 356]
    assert tile.split == "val"
    validate(dest, manifest)


@pytest.mark.parametrize("compression", ["gzip", "lzf", "blosc_lz4", "blosc_lz4hc"])
def test_compressions_read_back_identically(tmp_path, manifest, compression):
    dest = pack_region(manifest, tmp_path / "r.h5", compression=compression)
    ref = pack_region(manifest, tmp_path / "ref.h5", compression="gzip", compression_level=1)
    for a, b in zip(iter_tiles(dest), iter_tiles(ref), strict=True):
        np.testing.assert_array_equal(a.s2, b.s2)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_blosc_file_reads_in_a_plain_h5py_with_hdf5plugin(tmp_path, manifest):
    dest = pack_region(manifest, tmp_path / "r.h5")
    code = (
        "import hdf5plugin, h5py, sys; f = h5py.File(sys.argv[1], 'r'); "
        "print(int(f['tiles/a/s2'][()].sum()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(dest)], capture_output=True, text=True, check=True
    )
    assert int(out.stdout) == int(next(iter_tiles(dest)).s2.astype(np.int64).sum())


def test_probability_s1_and_date_classes(tmp_path, manifest):
    manifest = manifest.copy()
    prob, s1 = [], []
    for row in manifest.itertuples():
        _, prof = read_raster(row.image)
        p = np.full((16, 16), 0.25, np.float32)
        p[row.Index % 16] = 0.75
        fprof = {**prof, "dtype": "float32", "nodata": None}
        prob.append(str(write_raster(tmp_path / f"p{row.Index}.tif", p, fprof)))
        v = np.stack([np.full((16, 16), -12.5, np.float32), np.full((16, 16), -20.0, np.float32)])
        v[0, 0, 0] = row.Index
        s1.append(str(write_raster(tmp_path / f"s{row.Index}.tif", v, fprof)))
    manifest["probability"], manifest["s1"] = prob, s1
    stats = manifest[["tile", "date"]].copy()
    stats["class"] = ["clear", "impaired", "unusable", "clear"] * 4
    stats_path = tmp_path / "dates.csv"
    stats.to_csv(stats_path, index=False)
    dest = pack_region(manifest, tmp_path / "r.h5", date_stats=stats_path)
    validate(dest, manifest)
    with open_packed(dest) as h5:
        tile = read_tile(h5, "b")
        g = h5["tiles/b"]
        assert [d.decode() for d in g["clear_dates"][()]] == [DATES[0], DATES[3]]
        assert [d.decode() for d in g["impaired_dates"][()]] == [DATES[1]]
        assert g["valid_fraction"].dtype == np.float32
        assert "dates.csv" in h5.attrs["date_class_source"]
    assert tile.dates_of("unusable") == [DATES[2]]  # flagged, kept in the stack
    assert tile.probability.shape == (4, 16, 16) and tile.probability.dtype == np.float32
    assert tile.s1.shape == (4, 2, 16, 16)
    rows = manifest[manifest.tile == "b"].reset_index()
    for t in range(4):
        np.testing.assert_array_equal(tile.probability[t], read_raster(rows.probability[t])[0][0])
        np.testing.assert_array_equal(tile.s1[t], read_raster(rows.s1[t])[0])
    assert tile.sources["s1"] == rows.s1.tolist()
    # A table that misses a date names it.
    stats.iloc[:-1].to_csv(stats_path, index=False)
    with pytest.raises(InputDataError, match=rf"tile d, date {DATES[3]}"):
        pack_region(manifest, tmp_path / "r2.h5", date_stats=stats_path)
    # Probability for some dates only: refused, naming the tile and date.
    manifest.loc[3, "probability"] = ""
    with pytest.raises(InputDataError, match="no probability file"):
        pack_region(manifest, tmp_path / "r3.h5")


def test_date_classes_from_masks_without_table(tmp_path, manifest):
    with open_packed(pack_region(manifest, tmp_path / "r.h5", clear_min=0.5)) as h5:
        tile = read_tile(h5, "a")
        assert "cloud masks" in h5.attrs["date_class_source"]
    expect = classify_dates(tile, clear_min=0.5)
    np.testing.assert_array_equal(tile.date_class, expect)
    frac = tile.clear.sum((1, 2)) / tile.valid.sum((1, 2))
    assert ((expect == 0) == (frac >= 0.5)).all()


def test_norm_stats_stored_match_pixels(tmp_path, manifest):
    dest = pack_region(manifest, tmp_path / "r.h5")
    stored = compute_norm_stats([dest])
    with h5py.File(dest, "a") as h5:
        assert h5.attrs["norm_split"] == "train" and h5.attrs["norm_count"] > 0
        del h5.attrs["norm_sum"]  # without the stored sums the pixels are read
    np.testing.assert_allclose(stored, compute_norm_stats([dest]), rtol=1e-9)


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


def _rewrite_bands(manifest, bands, descriptions):
    """Replace every image of the manifest by ``len(bands)`` bands with ``descriptions``."""
    for row in manifest.itertuples():
        img, prof = read_raster(row.image)
        write_raster(row.image, img[: len(bands)], prof, band_names=descriptions)


@pytest.mark.parametrize("bands", [["NDVI"], ["B02", "B03", "B04", "B08"]])
def test_band_names_come_from_the_first_image(tmp_path, manifest, bands):
    _rewrite_bands(manifest, bands, bands)
    dest = pack_region(manifest, tmp_path / "r.h5")
    assert packed_bands(dest) == tuple(bands)
    with open_packed(dest) as h5:
        assert packed_bands(h5) == tuple(bands)
        assert h5["tiles/a/s2"].shape[1] == len(bands)
        assert len(h5.attrs["norm_mean"]) == len(bands)
    validate(dest, manifest)


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


def test_unnamed_bands_and_band_count_changes_are_refused(tmp_path, manifest):
    _rewrite_bands(manifest, ["B02", "B03"], None)
    first = manifest.sort_values(["tile", "date"]).iloc[0]
    with pytest.raises(InputDataError, match=rf"{first.image} \(tile a, date {first.date}\)"):
        pack_region(manifest, tmp_path / "r.h5")
    _rewrite_bands(manifest, ["B02", "B03"], ["B02", "B03"])
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img[:1], prof, band_names=["B02"])
    with pytest.raises(InputDataError, match=rf"{row.image}.*1 bands, expected 2 \(B02, B03\)"):
        pack_region(manifest, tmp_path / "r.h5")


def test_a_date_with_its_bands_in_another_order_is_refused(tmp_path, manifest):
    _rewrite_bands(manifest, ["B02", "B03"], ["B02", "B03"])
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img[::-1], prof, band_names=["B03", "B02"])
    with pytest.raises(InputDataError, match=rf"{row.image}.*bands B03, B02; the region's are B02"):
        pack_region(manifest, tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()


def test_train_overlap_is_conservative_and_skips_tiles_without_bounds():
    """A train tile covering part of a pixel (grids offset by half a pixel) takes the whole
    pixel; another CRS or a tile without bounds takes none."""
    rows = [
        {"tile": "v", "split": "test", "crs": "EPSG:1", "left": 0.0, "right": 80.0,
         "bottom": 0.0, "top": 80.0},
        {"tile": "t", "split": "train", "crs": "EPSG:1", "left": 55.0, "right": 200.0,
         "bottom": -100.0, "top": 25.0},
        {"tile": "o", "split": "train", "crs": "EPSG:2", "left": 0.0, "right": 80.0,
         "bottom": 0.0, "top": 80.0},
        {"tile": "n", "split": "val", "crs": "EPSG:1", "left": float("nan"), "right": 1.0,
         "bottom": 0.0, "top": 1.0},
    ]  # fmt: skip
    shared = train_overlap(pd.DataFrame(rows), {"v": (8, 8), "n": (1, 1)})
    assert set(shared) == {"v"}
    expected = np.zeros((8, 8), bool)
    expected[5:, 5:] = True  # x 55..80 touches columns 5..7, y 0..25 rows 5..7 (10 m pixels)
    np.testing.assert_array_equal(shared["v"], expected)


def test_mask_on_another_grid_is_refused(tmp_path, manifest):
    row = manifest.iloc[0]
    with rasterio.open(row["mask"]) as src:
        prof = dict(src.profile)
    write_raster(row["mask"], np.zeros((8, 8), np.uint8), {**prof, "width": 8, "height": 8})
    with pytest.raises(InputDataError, match="not on the image grid"):
        pack_region(manifest, tmp_path / "r.h5")


def test_open_packed_checks_version(tmp_path, manifest):
    path = pack_region(manifest, tmp_path / "old.h5")
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
    good = pack_region(manifest, tmp_path / "good.h5")
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"cut.h5"):
        validate(cut, manifest)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputDataError, match="truncated, or not HDF5"):
        open_packed(text)
    with pytest.raises(InputDataError, match="does not exist"):
        open_packed(tmp_path / "missing.h5")


def test_tiles_keep_their_own_dates(tmp_path, manifest):
    """SEN12MS-CR-TS ROIs of one region were acquired on different days: each tile keeps
    its own series, and the file still matches its manifest."""
    odd = manifest[~((manifest.tile == "c") & (manifest.date == DATES[2]))]
    dest = pack_region(odd, tmp_path / "r.h5", eval_date_fraction=1.0)
    validate(dest, odd)
    tiles = {t.tile: t for t in iter_tiles(dest)}
    assert tiles["c"].dates == [DATES[0], DATES[1], DATES[3]] and tiles["d"].dates == DATES
    assert tiles["c"].s2.shape[0] == tiles["c"].gap.shape[0] == 3


def test_pixels_shared_with_train_tiles_are_never_scored(tmp_path):
    """Overlapping tiles: the columns a val/test tile shares with a train tile get no
    evaluation gap (the model trained on their clear series)."""
    manifest = write_series(tmp_path / "tiles", {"a": "train", "b": "test"}, DATES)
    b = manifest["tile"] == "b"  # b moved 4 px onto a: its first 4 columns are a's last 4
    manifest.loc[b, "left"] -= 4 * 10.0
    manifest.loc[b, "right"] -= 4 * 10.0
    masks = {"a": np.ones((4, 16, 16), np.uint8), "b": np.zeros((4, 16, 16), np.uint8)}
    shared = train_overlap(manifest, {n: m.shape[1:] for n, m in masks.items()})
    assert set(shared) == {"b"}
    assert shared["b"][:, :4].all() and not shared["b"][:, 4:].any()
    dest = pack_region(manifest, tmp_path / "r.h5", eval_date_fraction=1.0)
    gap = {t.tile: t.gap for t in iter_tiles(dest)}["b"]
    assert gap.any() and not gap[:, :, :4].any()


def test_failed_pack_keeps_the_previous_file(tmp_path, manifest):
    dest = pack_region(manifest, tmp_path / "r.h5")
    before = dest.read_bytes()
    row = manifest[manifest.tile == "d"].iloc[1]  # the last tile: fails late
    with rasterio.open(row.image) as src:
        prof = dict(src.profile)
    write_raster(row.image, np.ones((12, 16, 16), np.uint16), prof)
    with pytest.raises(InputDataError, match=r"tile d.*12 bands"):
        pack_region(manifest, dest)
    assert dest.read_bytes() == before
    assert not list(tmp_path.glob(".r.h5*"))


def test_validate_reports_differences(tmp_path, manifest):
    dest = pack_region(manifest, tmp_path / "r.h5")
    validate(dest, manifest)
    extra = manifest[manifest.tile == "a"].assign(tile="z")
    with pytest.raises(InputDataError, match=r"tiles missing: \['z'\]"):
        validate(dest, pd.concat([manifest, extra]))
    fewer = manifest[manifest.date != DATES[0]]
    with pytest.raises(InputDataError, match=r"dates .* differ"):
        validate(dest, fewer)
    bigger = manifest.assign(width=32)
    with pytest.raises(InputDataError, match="s2 shape"):
        validate(dest, bigger)


def test_write_packed_rejects_unknown_compression(tmp_path, manifest):
    with pytest.raises(ConfigError, match=r"pack.compression"):
        pack_region(manifest, tmp_path / "r.h5", compression="zip")
