"""Rule metrics of one region: the packed test tiles and the stored model output scored with
the configured baselines, the table tagged with region, source and experiment."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from cloudfree.errors import InputDataError
from cloudfree.metrics.region import example_predictions, region_metrics
from cloudfree.metrics.table import metric_columns
from cloudfree.packed import iter_tiles

from ..packed import make_packed, write_packed

OFFSET = 0.01  # the stored model output: truth + OFFSET everywhere


def _evaluation_file(path: Path, packed: Path, skip: str | None = None) -> Path:
    """``tiles/<tile>/pred`` for every tile with gaps, as inference writes it."""
    with h5py.File(path, "w") as ev:
        for tile in iter_tiles(packed):
            if tile.gap is not None and tile.tile != skip:
                truth = tile.reflectance()
                ev[f"tiles/{tile.tile}/pred"] = np.where(np.isfinite(truth), truth, 0) + OFFSET
    return path


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("region")
    packed = make_packed(root / "p.h5", n_tiles=3, size=16, dates=4, seed=2, bands=["NDVI", "NDWI"])
    tile = next(iter_tiles(packed, split="test"))
    assert (tile.gap & tile.clear).any(), "the test tile should have masked pixels to score"
    return packed, _evaluation_file(root / "e.h5", packed)


def test_region_metrics_uses_the_packed_bands(region) -> None:
    packed, ev = region
    table, _ = region_metrics(packed, ev, baselines=["linear"], experiment="e")
    assert tuple(table.columns) == (
        "region", "source", "experiment", *metric_columns(["NDVI", "NDWI"])
    )  # fmt: skip
    assert len(table) == 4 * 2  # one test tile, 4 dates, model and linear
    assert (table["method"] == "linear").sum() == 4
    assert set(table["region"]) == {"synth"} and set(table["source"]) == {"synthetic-test"}
    assert set(table["experiment"]) == {"e"} and set(table["split"]) == {"test"}


def test_region_metrics_scores_the_stored_model_output(region) -> None:
    packed, ev = region
    table, summary = region_metrics(packed, ev, baselines=["mean", "linear"], experiment="e")
    assert table["method"].unique().tolist() == ["model", "mean", "linear"]
    model = table[(table["method"] == "model") & (table["n_masked"] > 0)]
    assert len(model) > 0
    assert model["mae_masked"].tolist() == pytest.approx([OFFSET] * len(model), rel=1e-5)
    assert model["mae_masked_NDWI"].tolist() == pytest.approx([OFFSET] * len(model), rel=1e-5)
    assert list(summary.columns[:6]) == ["region", "method", "tiles", "rows", "n_masked",
                                         "n_observed"]  # fmt: skip
    assert summary["method"].tolist() == ["model", "mean", "linear"]
    assert set(summary["region"]) == {"synth"}
    assert summary.loc[0, "mae_masked"] == pytest.approx(OFFSET, rel=1e-5)
    assert summary.loc[0, "n_masked"] == model["n_masked"].sum()
    assert summary.loc[2, "mae_masked_diff_linear"] == 0


def test_a_missing_prediction_names_the_file_and_tile(region, tmp_path: Path) -> None:
    packed, _ = region
    test_tile = next(iter_tiles(packed, split="test")).tile
    ev = _evaluation_file(tmp_path / "e.h5", packed, skip=test_tile)
    with pytest.raises(
        InputDataError, match=rf"method 'model'.*e\.h5: no prediction for tile {test_tile}"
    ):
        region_metrics(packed, ev, baselines=["linear"], experiment="e")


def test_a_region_without_test_tiles_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    s2 = rng.integers(100, 3000, (3, 2, 8, 8)).astype(np.uint16)
    mask = np.zeros((3, 8, 8), np.uint8)
    packed = write_packed(
        tmp_path / "p.h5", {"t0": ("train", s2, mask, np.array([1, 5, 9]), None)}, bands=["a", "b"]
    )
    with h5py.File(tmp_path / "e.h5", "w"):
        pass
    with pytest.raises(InputDataError, match=r"region synth has no test tile to score"):
        region_metrics(packed, tmp_path / "e.h5", baselines=["linear"], experiment="e")
    with pytest.raises(InputDataError, match="no test tile with evaluation gaps"):
        example_predictions(packed, tmp_path / "e.h5", ["linear"])


def test_example_predictions_of_the_first_test_tile(region) -> None:
    packed, ev = region
    tile, predictions = example_predictions(packed, ev, ["closest", "linear"])
    assert tile.tile == next(iter_tiles(packed, split="test")).tile
    assert list(predictions) == ["model", "closest", "linear"]
    truth = tile.reflectance()
    assert all(p.shape == truth.shape for p in predictions.values())
    finite = np.isfinite(truth)
    np.testing.assert_allclose(predictions["model"][finite], truth[finite] + OFFSET, rtol=1e-6)
