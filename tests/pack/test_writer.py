"""Tests of cloudfree.pack.writer: pack_region and write_packed."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import rasterio

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import schema
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import read_raster, write_raster
from cloudfree.pack.check import validate
from cloudfree.pack.writer import compression_filter, write_packed
from cloudfree.packed import (
    FORMAT_VERSION,
    iter_tiles,
    open_packed,
    packed_bands,
    read_meta,
    read_tile,
    tile_names,
)
from cloudfree.train.reader import PackedReader

from ..packed import write_packed as write_test_packed
from ..series import write_series
from .sample import DATES, PACK, pack

BLOSC_ID = 32001


def test_pack_roundtrip_keeps_pixels_and_georeference(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5", evaluation={"seed": 3})
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
    dest = pack(manifest, tmp_path / "r.h5", {"compression": compression})
    ref = pack(manifest, tmp_path / "ref.h5", {"compression": "gzip", "compression_level": 1})
    for a, b in zip(iter_tiles(dest), iter_tiles(ref), strict=True):
        np.testing.assert_array_equal(a.s2, b.s2)
        np.testing.assert_array_equal(a.mask, b.mask)
    with open_packed(dest) as h5:
        assert h5.attrs["compression"] == compression


@pytest.mark.parametrize("compression", ["gzip", "lzf", "blosc_lz4", "blosc_lz4hc"])
def test_every_pixel_dataset_is_checksummed_after_compression(tmp_path, manifest, compression):
    dest = pack(manifest, tmp_path / "r.h5", {"compression": compression})
    with open_packed(dest) as h5:
        for name in tile_names(h5):
            g = h5["tiles"][name]
            pixels = [k for k in ("s2", "mask", "gap", "probability", "s1") if k in g]
            assert "gap" in pixels or g.attrs["split"] == "train"
            for key in pixels:
                plist = g[key].id.get_create_plist()
                filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
                # Fletcher-32 last: it checks the compressed bytes as they are on disk
                assert g[key].fletcher32 and filters[-1] == h5py.h5z.FILTER_FLETCHER32, key


def test_every_compression_of_the_schema_has_a_filter():
    for name in schema()["properties"]["pack"]["properties"]["compression"]["enum"]:
        assert compression_filter(name, 4), name


def test_blosc_file_reads_in_a_plain_h5py_with_hdf5plugin(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5")
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
    dest = pack(manifest, tmp_path / "r.h5", date_stats=stats_path)
    validate(dest, manifest)
    with open_packed(dest) as h5:
        tile = read_tile(h5, "b")
        g = h5["tiles/b"]
        assert [d.decode() for d in g["clear_dates"][()]] == [DATES[0], DATES[3]]
        assert [d.decode() for d in g["impaired_dates"][()]] == [DATES[1]]
        assert g["valid_fraction"].dtype == np.float32
        assert "dates.csv" in h5.attrs["date_class_source"]
    assert tile.date_class.tolist() == [0, 1, 2, 0]
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
        pack(manifest, tmp_path / "r2.h5", date_stats=stats_path)
    # Probability for some dates only: refused, naming the tile and date.
    manifest.loc[3, "probability"] = ""
    with pytest.raises(InputDataError, match="no probability file"):
        pack(manifest, tmp_path / "r3.h5")


def test_without_a_table_the_masks_classify_and_the_file_says_how(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5", {"clear_min": 0.7, "usable_min": 0.2})
    with open_packed(dest) as h5:
        source = h5.attrs["date_class_source"]
    assert source == (
        "cloud masks: clear if >= 0.7 of the valid pixels are clear, unusable if < 0.2"
    )
    # tests/pack/test_dates.py checks the classes themselves against the raw masks
    assert all(t.date_class is not None for t in iter_tiles(dest))


def test_write_packed_classifies_tiles_without_classes(tmp_path, manifest):
    tiles = list(iter_tiles(pack(manifest, tmp_path / "r.h5", {"clear_min": 0.7})))
    given = tiles[0].date_class.copy()
    for tile in tiles:
        tile.date_class = None
    tiles[0].date_class = np.array([2, 2, 2, 2], np.uint8)  # given classes are kept
    dest = write_packed(
        tmp_path / "w.h5", tiles, region="r", source="s", bands=S2_L1C_BANDS,
        pack={**PACK, "clear_min": 0.7},
    )  # fmt: skip
    back = list(iter_tiles(dest))
    assert back[0].date_class.tolist() == [2, 2, 2, 2]
    assert given.tolist() != [2, 2, 2, 2]
    reference = list(iter_tiles(tmp_path / "r.h5"))
    for a, b in zip(back[1:], reference[1:], strict=True):
        np.testing.assert_array_equal(a.date_class, b.date_class)


def test_gaps_only_on_evaluation_tiles_and_deterministic(tmp_path, manifest):
    fraction = {"seed": 1, "date_fraction": 1.0}
    a = pack(manifest, tmp_path / "a.h5", evaluation=fraction)
    b = pack(manifest, tmp_path / "b.h5", evaluation=fraction)
    ta, tb = list(iter_tiles(a)), list(iter_tiles(b))
    assert [t.gap is None for t in ta] == [True, True, False, False]
    for x, y in zip(ta, tb, strict=True):
        if x.gap is not None:
            np.testing.assert_array_equal(x.gap, y.gap)
            assert x.gap.any()


def _rewrite_bands(manifest, bands, descriptions):
    """Replace every image of the manifest by ``len(bands)`` bands with ``descriptions``."""
    for row in manifest.itertuples():
        img, prof = read_raster(row.image)
        write_raster(row.image, img[: len(bands)], prof, band_names=descriptions)


@pytest.mark.parametrize("bands", [["NDVI"], ["B02", "B03", "B04", "B08"]])
def test_band_names_come_from_the_first_image(tmp_path, manifest, bands):
    _rewrite_bands(manifest, bands, bands)
    dest = pack(manifest, tmp_path / "r.h5")
    assert packed_bands(dest) == tuple(bands)
    with open_packed(dest) as h5:
        assert packed_bands(h5) == tuple(bands)
        assert h5["tiles/a/s2"].shape[1] == len(bands)
        assert len(h5.attrs["norm_mean"]) == len(bands)
    validate(dest, manifest)


def test_wrong_band_count_names_file_and_date_and_writes_nothing(tmp_path, manifest):
    row = manifest.iloc[2]
    with rasterio.open(row.image) as src:
        prof = dict(src.profile)
    write_raster(row.image, np.ones((4, 16, 16), np.uint16), prof)
    with pytest.raises(InputDataError, match=rf"{row.tile}, date {row.date}.*4 bands"):
        pack(manifest, tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()
    assert not list(tmp_path.glob(".r.h5*"))


def test_a_date_with_its_bands_in_another_order_is_packed_in_the_regions(tmp_path, manifest):
    _rewrite_bands(manifest, ["B02", "B03"], ["B02", "B03"])
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img[::-1], prof, band_names=["B03", "B02"])
    tiles = {t.tile: t for t in iter_tiles(pack(manifest, tmp_path / "r.h5"))}
    tile = tiles[row.tile]
    np.testing.assert_array_equal(tile.s2[list(tile.dates).index(row.date)], img)


def test_a_date_without_a_band_of_the_region_writes_nothing(tmp_path, manifest):
    _rewrite_bands(manifest, ["B02", "B03"], ["B02", "B03"])
    row = manifest.iloc[2]
    img, prof = read_raster(row.image)
    write_raster(row.image, img, prof, band_names=["B03", "B04"])
    with pytest.raises(InputDataError, match=rf"{row.image}.*: B02 missing \(the file has B03"):
        pack(manifest, tmp_path / "r.h5")
    assert not (tmp_path / "r.h5").exists()


def test_tiles_keep_their_own_dates(tmp_path, manifest):
    """SEN12MS-CR-TS ROIs of one region were acquired on different days: each tile keeps
    its own series, and the file still matches its manifest."""
    odd = manifest[~((manifest.tile == "c") & (manifest.date == DATES[2]))]
    dest = pack(odd, tmp_path / "r.h5", evaluation={"date_fraction": 1.0})
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
    dest = pack(manifest, tmp_path / "r.h5", evaluation={"date_fraction": 1.0})
    gap = {t.tile: t.gap for t in iter_tiles(dest)}["b"]
    assert gap.any() and not gap[:, :, :4].any()


def test_failed_pack_keeps_the_previous_file(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5")
    before = dest.read_bytes()
    row = manifest[manifest.tile == "d"].iloc[1]  # the last tile: fails late
    with rasterio.open(row.image) as src:
        prof = dict(src.profile)
    write_raster(row.image, np.ones((12, 16, 16), np.uint16), prof)
    with pytest.raises(InputDataError, match=r"tile d.*12 bands"):
        pack(manifest, dest)
    assert dest.read_bytes() == before
    assert not list(tmp_path.glob(".r.h5*"))


def test_unknown_compression_is_refused_before_reading(tmp_path, manifest):
    manifest = manifest.assign(image=str(tmp_path / "absent.tif"))  # never opened
    with pytest.raises(ConfigError, match=r"pack.compression 'zip': expected one of blosc_lz4hc"):
        pack(manifest, tmp_path / "r.h5", {"compression": "zip"})
    assert not (tmp_path / "r.h5").exists()


def test_train_and_val_tiles_leave_out_the_held_out_period(tmp_path, manifest):
    held = {"start": "2021-02-01", "end": "2021-03-31"}  # the 2nd and 3rd of DATES
    dest = pack(manifest, tmp_path / "r.h5", evaluation={"holdout_period": held})
    dates = {t.tile: t.dates for t in iter_tiles(dest)}
    outside = [DATES[0], DATES[3]]
    assert dates == {"a": outside, "b": outside, "c": outside, "d": DATES}
    d = next(iter_tiles(dest, split="test"))
    assert d.s2.shape[0] == 4 and d.gap is not None and d.gap.shape[0] == 4
    c = next(iter_tiles(dest, split="val"))
    assert c.s2.shape[0] == 2 and c.gap.shape[0] == 2
    kept = manifest[~manifest["date"].isin(DATES[1:3]) | (manifest["split"] == "test")]
    validate(dest, kept)
    with pytest.raises(InputDataError):
        validate(dest, manifest)  # the file does not hold the train tiles' held-out dates


def test_large_tiles_get_64_px_date_wise_chunks_and_crops_read_back_exactly(tmp_path):
    rng = np.random.default_rng(4)
    s2 = rng.integers(1, 10000, (3, 13, 100, 150), dtype=np.uint16)
    mask = rng.integers(0, 4, (3, 100, 150), dtype=np.uint8)
    path = write_test_packed(tmp_path / "big.h5", {"a": ("train", s2, mask, [5, 50, 90], None)})
    with open_packed(path) as h5:
        assert h5["tiles/a/s2"].chunks == (1, 13, 64, 64)
        assert h5["tiles/a/mask"].chunks == (1, 64, 64)
        np.testing.assert_array_equal(read_tile(h5, "a").s2, s2)
    (ref,) = read_meta([path]).tiles
    reader = PackedReader([path], cache_bytes=0)
    for y, x in ((0, 0), (37, 61), (68, 118)):  # inside one chunk, across four, at the edge
        rows, cols = slice(y, y + 32), slice(x, x + 32)
        got_s2, got_mask = reader.read(ref, np.array([0, 2]), rows, cols)
        np.testing.assert_array_equal(got_s2, s2[[0, 2], :, rows, cols])
        np.testing.assert_array_equal(got_mask, mask[[0, 2], rows, cols])
    reader.close()
