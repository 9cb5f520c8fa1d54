"""Rule metrics of one region: the packed test tiles and the stored model output scored with
the configured baselines, and so is the region's evaluation scene; the tables tagged with
region, source and experiment, the dates labelled with their evaluation set."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from cloudfree.errors import InputDataError
from cloudfree.metrics.region import (
    RegionScores,
    evaluation_labels,
    example_predictions,
    region_metrics,
)
from cloudfree.metrics.summary import summary_columns
from cloudfree.metrics.table import metric_columns, pooled_columns
from cloudfree.pack.gaps import evaluation_gaps
from cloudfree.packed import TileSeries, iter_tiles

from ..packed import make_packed, write_packed
from .tiles import hand_tile

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


def _scene(path: Path, n_tiles: int = 3, bands: tuple[str, ...] = ("NDVI", "NDWI")) -> Path:
    """An evaluation scene: every tile a test tile with evaluation gaps."""
    rng = np.random.default_rng(9)
    tiles = {}
    for i in range(n_tiles):
        s2 = rng.integers(500, 3000, (5, len(bands), 16, 16)).astype(np.uint16)
        mask = np.zeros((5, 16, 16), np.uint8)
        mask[1, :4] = 1
        tiles[f"s{i}"] = ("test", s2, mask, np.array([20, 45, 70, 95, 120]))
    gaps = evaluation_gaps({k: v[2] for k, v in tiles.items()}, list(tiles), seed=1,
                           date_fraction=0.6)  # fmt: skip
    tiles = {k: (*v, gaps[k]) for k, v in tiles.items()}
    return write_packed(path, tiles, region="synth_inductive", bands=bands)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("scene")
    packed = _scene(root / "s.h5")
    return packed, _evaluation_file(root / "se.h5", packed)


def test_region_metrics_uses_the_packed_bands(region) -> None:
    packed, ev = region
    scores = region_metrics(packed, ev, baselines=["linear"], experiment="e", holdout=None)
    assert isinstance(scores, RegionScores)
    table, pooled, summary = scores
    keys = ("region", "source", "experiment", "run")
    assert tuple(table.columns) == (*keys, *metric_columns(["NDVI", "NDWI"]))
    assert tuple(pooled.columns) == (*keys, *pooled_columns(["NDVI", "NDWI"]))
    assert list(summary.columns) == ["region", "experiment", "run", *summary_columns()]
    assert len(table) == 4 * 2  # one test tile, 4 dates, model and linear
    assert len(pooled) == 2 and (pooled["dates"] == 4).all()
    assert (table["method"] == "linear").sum() == 4
    for frame in (table, pooled):
        assert set(frame["region"]) == {"synth"} and set(frame["source"]) == {"synthetic-test"}
        assert set(frame["experiment"]) == {"e"} and set(frame["split"]) == {"test"}
        assert set(frame["evaluation"]) == {"transductive"}


def test_region_metrics_scores_the_stored_model_output(region) -> None:
    packed, ev = region
    table, pooled, summary = region_metrics(
        packed, ev, baselines=["mean", "linear"], experiment="e", holdout=None
    )
    assert table["method"].unique().tolist() == ["model", "mean", "linear"]
    model = table[(table["method"] == "model") & (table["n_masked"] > 0)]
    assert len(model) > 0
    assert model["mae_masked"].tolist() == pytest.approx([OFFSET] * len(model), rel=1e-5)
    assert model["mae_masked_NDWI"].tolist() == pytest.approx([OFFSET] * len(model), rel=1e-5)
    pooled_model = pooled[pooled["method"] == "model"].iloc[0]
    assert pooled_model["mae_masked"] == pytest.approx(OFFSET, rel=1e-5)
    assert pooled_model["n_masked"] == model["n_masked"].sum()
    assert pooled_model["mae_observed"] == pytest.approx(OFFSET, rel=1e-5)  # the raw output
    assert list(summary.columns[:9]) == ["region", "experiment", "run", "evaluation", "method",
                                         "tiles", "rows", "n_masked", "n_observed"]  # fmt: skip
    assert summary["method"].tolist() == ["model", "mean", "linear"]
    assert set(summary["region"]) == {"synth"} and set(summary["evaluation"]) == {"transductive"}
    assert summary.loc[0, "mae_masked"] == pytest.approx(OFFSET, rel=1e-5)
    assert summary.loc[0, "n_masked"] == model["n_masked"].sum()
    assert summary.loc[2, "mae_masked_diff_linear"] == 0
    baselines = pooled[pooled["method"] != "model"].set_index("method")["mae_masked"]
    assert (summary["best_baseline"] == baselines.idxmin()).all()


def test_the_evaluation_scene_is_the_inductive_set(region, scene) -> None:
    packed, ev = region
    table, pooled, summary = region_metrics(
        packed, ev, baselines=["linear"], experiment="e", holdout=None, inductive=scene
    )
    assert set(table["region"]) == {"synth"}  # the region's tables hold both sets
    by_set = table.groupby("evaluation", sort=False)["tile"].unique()
    assert list(by_set.index) == ["transductive", "inductive"]
    test_tile = next(iter_tiles(packed, split="test")).tile
    assert list(by_set["transductive"]) == [test_tile]
    assert sorted(by_set["inductive"]) == ["s0", "s1", "s2"]
    assert len(table) == (4 + 3 * 5) * 2
    assert pooled.groupby("evaluation", sort=False).size().to_dict() == {
        "transductive": 2, "inductive": 6
    }  # fmt: skip
    induct = table[(table["evaluation"] == "inductive") & (table["method"] == "model")]
    scored = induct[induct["n_masked"] > 0]
    assert scored["mae_masked"].tolist() == pytest.approx([OFFSET] * len(scored), rel=1e-5)
    assert list(zip(summary["evaluation"], summary["method"], strict=True)) == [
        ("transductive", "model"), ("transductive", "linear"),
        ("inductive", "model"), ("inductive", "linear"),
    ]  # fmt: skip
    assert summary["tiles"].tolist() == [1, 1, 3, 3]


def test_an_evaluation_scene_of_other_bands_is_refused(region, tmp_path: Path) -> None:
    packed, ev = region
    other = _scene(tmp_path / "s.h5", bands=("B04", "B08"))
    with pytest.raises(InputDataError, match=r"s\.h5: bands differ from .*p\.h5"):
        region_metrics(packed, ev, baselines=["linear"], experiment="e", holdout=None,
                       inductive=(other, _evaluation_file(tmp_path / "e.h5", other)))  # fmt: skip


def test_a_missing_scene_prediction_names_its_file(region, scene, tmp_path: Path) -> None:
    packed, ev = region
    scene_packed, _ = scene
    partial = _evaluation_file(tmp_path / "se.h5", scene_packed, skip="s1")
    with pytest.raises(InputDataError, match=r"method 'model'.*se\.h5: no prediction for tile s1"):
        region_metrics(packed, ev, baselines=["linear"], experiment="e", holdout=None,
                       inductive=(scene_packed, partial))  # fmt: skip


def test_held_out_dates_of_the_test_tiles_are_inductive(region) -> None:
    packed, ev = region
    tile = next(iter_tiles(packed, split="test"))
    held = {"start": tile.dates[1], "end": tile.dates[2]}
    table, pooled, summary = region_metrics(
        packed, ev, baselines=["linear"], experiment="e", holdout=held
    )
    model = table[table["method"] == "model"]
    assert model["evaluation"].tolist() == ["transductive", "inductive", "inductive",
                                            "transductive"]  # fmt: skip
    assert pooled.groupby("evaluation", sort=False)["dates"].first().to_dict() == {
        "transductive": 2, "inductive": 2
    }  # fmt: skip
    assert summary["evaluation"].tolist() == ["transductive"] * 2 + ["inductive"] * 2


def test_a_missing_prediction_names_the_file_and_tile(region, tmp_path: Path) -> None:
    packed, _ = region
    test_tile = next(iter_tiles(packed, split="test")).tile
    ev = _evaluation_file(tmp_path / "e.h5", packed, skip=test_tile)
    with pytest.raises(
        InputDataError, match=rf"method 'model'.*e\.h5: no prediction for tile {test_tile}"
    ):
        region_metrics(packed, ev, baselines=["linear"], experiment="e", holdout=None)


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
        region_metrics(packed, tmp_path / "e.h5", baselines=["linear"], experiment="e",
                       holdout=None)  # fmt: skip
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


def _dated(dates: list[str]) -> TileSeries:
    tile = hand_tile()
    tile.dates = dates
    return tile


def test_evaluation_labels() -> None:
    tile = _dated(["2021-01-01", "2021-03-01", "2021-03-31", "2021-04-01"])
    spring = {"start": "2021-03-01", "end": "2021-03-31"}  # both ends included
    assert evaluation_labels("synthetic", None)(tile).tolist() == ["transductive"] * 4
    assert evaluation_labels("folder", spring)(tile).tolist() == [
        "transductive", "inductive", "inductive", "transductive"
    ]  # fmt: skip
    # the SEN12MS-CR-TS test split: other ROIs and dates, inductive whatever the period
    assert evaluation_labels("sen12mscrts", None)(tile).tolist() == ["inductive"] * 4
    assert evaluation_labels("sen12mscrts", spring)(tile).tolist() == ["inductive"] * 4
    labels = evaluation_labels("stac", {"start": "2022-01-01", "end": "2022-12-31"})(tile)
    assert labels.tolist() == ["transductive"] * 4 and labels.dtype == object


def test_scoring_a_region_logs_its_progress_over_the_test_tiles(region, caplog) -> None:
    packed, ev = region
    with caplog.at_level(logging.INFO, logger="cloudfree.metrics.region"):
        region_metrics(packed, ev, baselines=["linear"], experiment="e", holdout=None)
    lines = [r.getMessage() for r in caplog.records if r.name == "cloudfree.metrics.region"]
    # the model, then the baselines: each its first and its last test tile at least
    assert lines[0].startswith(f"scoring model on {packed}: test tiles: 1 of 1 (100 %)")
    assert lines[-1].startswith(f"scoring linear on {packed}: test tiles: 1 of 1 (100 %)")
