"""Inference products and the scoring of a region, on a small packed file and a short training."""

import h5py
import numpy as np
import pytest
import rasterio

from cloudfree.evaluate import region_metrics
from cloudfree.infer import QUALITY, infer_region
from cloudfree.metrics import METRIC_COLUMNS
from cloudfree.packing import iter_tiles
from cloudfree.train import train_model

from .packed import make_packed

PARAMS = {
    "model": {"name": "utilise", "widths": [8, 16], "heads": 2},
    "steps": 40, "batch_size": 2, "crop": 16, "lr": 0.01, "warmup_steps": 5,
    "val_every": 20, "device": "cpu",
}  # fmt: skip


@pytest.fixture(scope="module")
def inferred(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    packed = make_packed(root / "r.h5", n_tiles=5, size=32, dates=6, seed=1)
    train_model([packed], root / "model.pt", root / "history.csv", PARAMS)
    infer_region(root / "model.pt", packed, root / "tiles", root / "eval.h5", device="cpu")
    return root, packed


def test_products_on_the_input_grid_keep_observed_pixels(inferred):
    root, packed = inferred
    for tile in iter_tiles(packed):
        for t, date in enumerate(tile.dates):
            with rasterio.open(root / "tiles" / tile.tile / f"{date}.tif") as src:
                assert src.crs == tile.crs and src.transform == tile.transform
                assert src.tags()["DATE"] == date and src.nodata == 0
                dn = src.read()
            clear = tile.clear[t]
            np.testing.assert_array_equal(dn[:, clear], tile.s2[t][:, clear])
            assert dn.min() >= 1
            thick = tile.mask[t] == 1
            if thick.sum() > 20:  # under thick cloud the product is darker than the cloud
                assert dn[1][thick].mean() < tile.s2[t][1][thick].mean()
            with rasterio.open(root / "tiles" / tile.tile / f"{date}_quality.tif") as src:
                quality = src.read(1)
            assert (quality[clear] == QUALITY["observed"]).all()
            assert (quality[tile.mask[t] == 3] == QUALITY["reconstructed_shadow"]).all()


def test_evaluation_file_holds_gap_tiles_only(inferred):
    root, packed = inferred
    gapped = {t.tile: t.s2.shape for t in iter_tiles(packed) if t.gap is not None}
    with h5py.File(root / "eval.h5") as ev:
        assert {name: ev[f"tiles/{name}/pred"].shape for name in ev["tiles"]} == gapped


def test_region_metrics_scores_model_and_baselines(inferred):
    root, packed = inferred
    table, summary = region_metrics(
        packed, root / "eval.h5", baselines=["linear", "mean"], experiment="e"
    )
    assert list(table.columns) == ["region", "source", "experiment", *METRIC_COLUMNS]
    n_test = sum(t.split == "test" for t in iter_tiles(packed))
    assert len(table) == n_test * 6 * 3
    assert list(summary["method"]) == ["model", "linear", "mean"]
    assert summary.set_index("method").loc["linear", "mae_observed"] == 0
    assert table["mae_masked"].dropna().between(0, 1).all()
