"""Tests of cloudfree.infer.region: the products of a region (model file built directly,
untrained weights) and bad input."""

from __future__ import annotations

import itertools

import h5py
import numpy as np
import pytest
import rasterio

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section
from cloudfree.errors import ConfigError, ModelFileError
from cloudfree.infer.region import QUALITY, change_pairs, infer_region
from cloudfree.metrics.region import region_metrics
from cloudfree.metrics.table import METRIC_COLUMNS, metric_columns, pooled_columns
from cloudfree.packed import iter_tiles

from ..model_file import infer_settings, write_model_file
from ..packed import make_packed


@pytest.fixture(scope="module")
def inferred(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    packed = make_packed(root / "r.h5", n_tiles=5, size=32, dates=6, seed=1)
    write_model_file(root / "model.pt")
    settings = infer_settings(
        compress="zstd", window=16, overlap=8, batch_size=3,
        embeddings={"enabled": True, "channels": [0, 5]}, change={"enabled": True, "pairs": []},
    )  # fmt: skip
    infer_region(root / "model.pt", packed, root / "tiles", root / "eval.h5", **settings)
    return root, packed


def test_products_on_the_input_grid_keep_observed_pixels(inferred):
    root, packed = inferred
    for tile in iter_tiles(packed):
        for t, date in enumerate(tile.dates):
            with rasterio.open(root / "tiles" / tile.tile / f"{date}.tif") as src:
                assert src.crs == tile.crs and src.transform == tile.transform
                assert src.tags()["DATE"] == date and src.nodata == 0
                assert src.profile["compress"] == "zstd" and src.block_shapes[0] == (32, 32)
                assert src.dtypes[0] == "uint16" and src.descriptions[1] == "B02"
                assert set(src.scales) == {1e-4} and set(src.offsets) == {0.0}  # DN -> refl.
                dn = src.read()
            clear = tile.clear[t]
            np.testing.assert_array_equal(dn[:, clear], tile.s2[t][:, clear])
            assert dn[:, tile.valid[t]].min() >= 1
            assert (dn[:, ~tile.valid[t]] == 0).all()
            with rasterio.open(root / "tiles" / tile.tile / f"{date}_quality.tif") as src:
                quality = src.read(1)
                assert src.nodata == 0  # class 0: no data
            assert (quality[clear] == QUALITY["observed"]).all()
            assert (quality[tile.mask[t] == 1] == QUALITY["reconstructed_cloud"]).all()
            assert (quality[tile.mask[t] == 3] == QUALITY["reconstructed_shadow"]).all()


def test_optional_embedding_and_change_products(inferred):
    root, packed = inferred
    tile = next(iter_tiles(packed))
    folder = root / "tiles" / tile.tile
    with rasterio.open(folder / f"{tile.dates[0]}_embedding.tif") as src:
        assert src.count == 2 and src.dtypes[0] == "float32"
        assert src.descriptions == ("embedding_0", "embedding_5")
        assert src.transform == tile.transform and np.isfinite(src.read()).any()
    changes = sorted(p.name for p in folder.glob("*_change.tif"))
    assert changes == [f"{a}_{b}_change.tif" for a, b in itertools.pairwise(tile.dates)]
    with rasterio.open(folder / changes[0]) as src:
        cos = src.read(1)
        assert src.tags()["REFERENCE_DATE"] == tile.dates[0]
    assert np.nanmax(np.abs(cos)) <= 1 + 1e-5


def test_products_off_by_default(tmp_path):
    packed = make_packed(tmp_path / "r.h5", n_tiles=2, size=16, dates=3, seed=2)
    write_model_file(tmp_path / "m.pt")
    infer_region(
        tmp_path / "m.pt", packed, tmp_path / "tiles", tmp_path / "e.h5", **infer_settings()
    )
    names = {p.name for p in (tmp_path / "tiles").rglob("*.tif")}
    assert names and not [n for n in names if "embedding" in n or "change" in n]


def test_evaluation_file_holds_gap_tiles_only(inferred):
    root, packed = inferred
    gapped = {t.tile: t.s2.shape for t in iter_tiles(packed) if t.gap is not None}
    with h5py.File(root / "eval.h5") as ev:
        assert {name: ev[f"tiles/{name}/pred"].shape for name in ev["tiles"]} == gapped


def test_region_metrics_reads_the_evaluation_file(inferred):
    root, packed = inferred
    table, pooled, summary = region_metrics(
        packed, root / "eval.h5", baselines=["linear", "mean"], experiment="e", holdout=None
    )
    assert list(table.columns) == ["region", "source", "experiment", "run", *METRIC_COLUMNS]
    assert list(pooled.columns) == [
        "region",
        "source",
        "experiment",
        "run",
        *pooled_columns(S2_L1C_BANDS),
    ]
    n_test = sum(t.split == "test" for t in iter_tiles(packed))
    assert len(table) == n_test * 6 * 3
    assert len(pooled) == n_test * 3 and (pooled["dates"] == 6).all()
    assert list(summary["method"]) == ["model", "linear", "mean"]


def test_model_file_with_other_bands_is_refused(tmp_path):
    packed = make_packed(tmp_path / "r.h5", n_tiles=2, size=16, dates=3, seed=2)
    bad = write_model_file(tmp_path / "rgb.pt", bands=["B04", "B03", "B02"])
    with pytest.raises(ModelFileError, match=r"rgb\.pt.*\['B04', 'B03', 'B02'\].*B8A"):
        infer_region(bad, packed, tmp_path / "tiles", tmp_path / "e.h5", **infer_settings())
    assert not (tmp_path / "tiles").exists() and not (tmp_path / "e.h5").exists()


@pytest.mark.parametrize("bands", [["NDVI"], ["B02", "B03", "B04", "B08"]])
def test_products_carry_the_packed_band_names(tmp_path, bands):
    packed = make_packed(tmp_path / "r.h5", n_tiles=3, size=16, dates=3, seed=2, bands=bands)
    write_model_file(tmp_path / "m.pt", bands=bands)
    infer_region(
        tmp_path / "m.pt", packed, tmp_path / "tiles", tmp_path / "e.h5", **infer_settings()
    )
    tile = next(iter_tiles(packed))
    with rasterio.open(tmp_path / "tiles" / tile.tile / f"{tile.dates[0]}.tif") as src:
        assert src.count == len(bands) and list(src.descriptions) == bands
    table, _, _ = region_metrics(
        packed, tmp_path / "e.h5", baselines=["linear"], experiment="e", holdout=None
    )
    assert list(table.columns) == ["region", "source", "experiment", "run", *metric_columns(bands)]
    assert f"mae_masked_{bands[-1]}" in table.columns and "mae_masked_B01" not in table.columns


def test_bad_embedding_channels_and_pairs(tmp_path):
    packed = make_packed(tmp_path / "r.h5", n_tiles=2, size=16, dates=3, seed=2)
    model = write_model_file(tmp_path / "m.pt")
    with pytest.raises(ConfigError, match=r"infer\.embeddings\.channels \[99\].*16 channels"):
        infer_region(
            model, packed, tmp_path / "t", tmp_path / "e.h5",
            **infer_settings(embeddings={"enabled": True, "channels": [99]}),
        )  # fmt: skip
    assert not (tmp_path / "t").exists() and not (tmp_path / "e.h5").exists()
    with pytest.raises(ConfigError, match=r"^infer\.compress: 'jpeg2000' is not one of"):
        section("infer", {"compress": "jpeg2000"})  # the schema refuses it before any job
    dates = ["2020-01-01", "2020-02-01", "2020-03-01"]
    assert change_pairs(dates, None) == [(0, 1), (1, 2)]
    assert change_pairs(dates, [["2020-01-01", "2020-03-01"], ["2020-01-01", "1999-01-01"]]) == [
        (0, 2)
    ]
