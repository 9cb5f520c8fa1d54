"""Figures of the metrics stage: each writes a readable PNG, also on awkward inputs, and shows
what it says it shows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from cloudfree.metrics import figures
from cloudfree.metrics.figures import error_vs_difficulty, example_reconstructions, method_bars
from cloudfree.metrics.table import as_method
from cloudfree.packed import iter_tiles

from ..packed import make_packed
from ..test_plotting import assert_labelled, assert_png, capture, texts


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch):
    return capture(monkeypatch, figures)


def _summary(**extra) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "region": "synth",
            "method": ["model", "linear", "closest", "mean"],
            "mae_masked": [0.004, 0.008, np.nan, 0.014],
            "psnr_observed": [44.0, np.inf, np.inf, 39.0],
        }
    )
    return df.assign(**extra)


def test_method_bars_plain_and_nan(tmp_path: Path, saved) -> None:
    method_bars(_summary(), tmp_path / "bars.png")
    assert_png(tmp_path / "bars.png")
    method_bars(_summary(), tmp_path / "psnr.png", metric="psnr", part="observed")
    assert_png(tmp_path / "psnr.png")
    assert [len(fig.axes) for fig in saved] == [1, 1]  # no evaluation column: one panel
    bars, psnr = (fig.axes[0] for fig in saved)
    assert [p.get_height() for p in bars.patches] == [0.004, 0.008, 0.0, 0.014]
    assert [t.get_text() for t in bars.texts] == ["n/a"]  # no bar for the NaN
    assert saved[0].get_suptitle() == "MAE on masked pixels, synth"
    assert bars.get_title() == "" and bars.get_ylabel() == "MAE, masked pixels (reflectance)"
    assert psnr.get_ylabel() == "PSNR, observed pixels (dB)" and bars.get_xlabel() == "method"
    for fig in saved:
        assert_labelled(fig)
    assert [t.get_text() for t in bars.get_xticklabels()] == ["model", "linear", "closest", "mean"]
    assert [t.get_text() for t in psnr.texts] == ["inf", "inf"]


def test_method_bars_with_ci(tmp_path: Path, saved) -> None:
    s = _summary(
        mae_masked_ci_low=[0.003, 0.007, np.nan, 0.015],  # low above the value: clipped
        mae_masked_ci_high=[0.005, np.nan, np.nan, 0.016],
    )
    method_bars(s.drop(columns="region"), tmp_path / "ci.png")
    assert_png(tmp_path / "ci.png")
    ax = saved[0].axes[0]
    assert saved[0].get_suptitle() == (
        "MAE on masked pixels (error bars: 95 % bootstrap interval over tiles)"
    )
    (errorbar,) = ax.containers[1:]  # the bars, then one error bar set
    segments = errorbar.lines[2][0].get_segments()
    assert len(segments) == 2  # model and mean: the only rows with both bounds finite
    np.testing.assert_allclose([seg[:, 1] for seg in segments], [[0.003, 0.005], [0.014, 0.016]])


def test_method_bars_one_panel_per_evaluation_set(tmp_path: Path, saved) -> None:
    transductive = _summary(evaluation="transductive", tiles=2)
    inductive = (
        _summary(evaluation="inductive", tiles=36)
        .iloc[:3]
        .assign(
            mae_masked=[0.006, 0.009, 0.011],
            mae_masked_ci_low=[0.005, 0.008, 0.010],
            mae_masked_ci_high=[0.007, 0.010, 0.012],
        )
    )
    summary = pd.concat([transductive, inductive], ignore_index=True)
    method_bars(summary, tmp_path / "sets.png")
    assert_png(tmp_path / "sets.png")
    (fig,) = saved
    left, right = fig.axes
    assert [ax.get_title() for ax in (left, right)] == ["transductive (2 tiles)",
                                                        "inductive (36 tiles)"]  # fmt: skip
    assert [p.get_height() for p in left.patches] == [0.004, 0.008, 0.0, 0.014]
    assert [p.get_height() for p in right.patches] == [0.006, 0.009, 0.011]
    assert [t.get_text() for t in right.get_xticklabels()] == ["model", "linear", "closest"]
    assert left.get_shared_y_axes().joined(left, right)  # one scale to compare the sets
    assert fig.get_suptitle().startswith("MAE on masked pixels, synth")
    # the transductive rows have no interval columns' values: only the inductive ones get bars
    assert len(left.containers) == 1
    (errorbar,) = right.containers[1:]
    segments = errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose(
        [seg[:, 1] for seg in segments], [[0.005, 0.007], [0.008, 0.010], [0.010, 0.012]]
    )


def test_method_bars_unknown_metric(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="ssim_masked"):
        method_bars(_summary(), tmp_path / "x.png", metric="ssim")
    assert not (tmp_path / "x.png").exists()


def _table(with_difficulty: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame(
        {
            "region": "synth",
            "method": np.repeat(["model", "linear"], n // 2),
            "mae_masked": rng.uniform(0, 0.02, n),
        }
    )
    df.loc[::7, "mae_masked"] = np.nan
    if with_difficulty:
        df["cloud_fraction"] = rng.uniform(0, 1, n)
        df["gap_days"] = rng.uniform(0, 30, n)
        df.loc[::5, "gap_days"] = np.nan
    return df


@pytest.mark.parametrize("with_difficulty", [True, False])
def test_error_vs_difficulty(tmp_path: Path, with_difficulty: bool, saved) -> None:
    error_vs_difficulty(_table(with_difficulty), tmp_path / "d.png")
    assert_png(tmp_path / "d.png")
    (fig,) = saved
    assert fig.get_suptitle() == (
        "MAE, masked pixels (reflectance) against the input's difficulty, synth"
    )
    assert_labelled(fig)
    if with_difficulty:
        left, right = fig.axes
        assert [t.get_text() for t in left.get_legend().get_texts()] == ["model", "linear"]
        assert left.get_xlabel() == "cloud fraction of the input date (share of pixels)"
        assert right.get_xlabel() == (
            "days from a masked pixel to its nearest available date (mean)"
        )
        assert left.get_ylabel() == "MAE, masked pixels (reflectance)"
        assert [ax.get_title() for ax in fig.axes] == ["against cloud cover", "against gap"]
        # binned means over at most 6 bins of the finite rows of each method
        assert all(1 <= len(line.get_xdata()) <= 6 for line in left.lines)
    else:
        assert texts(fig)[1:] == [
            "against cloud cover",
            "column 'cloud_fraction' missing from the metrics table",
            "against gap",
            "column 'gap_days' missing from the metrics table",
        ]


def test_error_vs_difficulty_degenerate(tmp_path: Path, saved) -> None:
    t = _table(True)
    t["mae_masked"] = np.nan  # nothing finite
    error_vs_difficulty(t, tmp_path / "nan.png")
    assert_png(tmp_path / "nan.png")
    assert texts(saved[-1])[2::2] == [
        "no finite mae_masked / cloud_fraction values",
        "no finite mae_masked / gap_days values",
    ]
    t = _table(True).assign(cloud_fraction=0.5)  # one x value
    error_vs_difficulty(t, tmp_path / "flat.png")
    assert_png(tmp_path / "flat.png")
    assert [list(line.get_xdata()) for line in saved[-1].axes[0].lines] == [[0.5], [0.5]]
    error_vs_difficulty(t, tmp_path / "nometric.png", metric="rmse_masked")
    assert_png(tmp_path / "nometric.png")
    assert texts(saved[-1])[2::2] == ["column 'rmse_masked' missing from the metrics table"] * 2
    for fig in saved:
        assert_labelled(fig)


@pytest.fixture(scope="module")
def test_tile(tmp_path_factory: pytest.TempPathFactory):
    path = make_packed(tmp_path_factory.mktemp("packed") / "p.h5", n_tiles=5, size=32, dates=6)
    return next(iter_tiles(path, split="test"))


def test_example_reconstructions(tmp_path: Path, test_tile, saved) -> None:
    tile = test_tile
    assert tile.gap is not None and (tile.gap & tile.clear).any()
    available = tile.clear & ~tile.gap
    preds = {name: as_method(name)(tile, available) for name in ("linear", "closest")}
    model = preds["linear"].copy()
    model[0, :, :4, :4] = np.nan  # NaN predictions are drawn grey, not a failure
    preds = {"model": model, **preds}
    example_reconstructions(tile, preds, tmp_path / "ex.png", dates=2)
    assert_png(tmp_path / "ex.png")
    img = imread(tmp_path / "ex.png")
    assert img.shape[1] > img.shape[0]  # 5 columns, at most 2 rows
    masked = (tile.gap & tile.clear).sum(axis=(1, 2))
    rows = sorted(np.argsort(-masked, kind="stable")[: min(2, int((masked > 0).sum()))])
    titles = [ax.get_title() for ax in saved[0].axes]
    assert len(titles) == 5 * len(rows)
    for r, t in enumerate(rows):
        date = tile.dates[t]
        assert titles[5 * r].startswith(f"{date}\ninput (")
        assert titles[5 * r + 1 : 5 * r + 5] == [
            f"{date}\n{name}" for name in ("model", "linear", "closest", "truth")
        ]


def test_example_reconstructions_without_gaps(tmp_path: Path, test_tile, saved) -> None:
    tile = replace(test_tile, gap=None)
    example_reconstructions(tile, {}, tmp_path / "none.png")
    assert_png(tmp_path / "none.png", min_side=50)
    assert texts(saved[0]) == [f"tile {tile.tile}: no date with masked pixels"]


def test_example_reconstructions_bad_shape(tmp_path: Path, test_tile) -> None:
    with pytest.raises(ValueError, match="shape"):
        example_reconstructions(test_tile, {"m": np.zeros((1, 13, 4, 4))}, tmp_path / "x.png")


def test_example_reconstructions_of_one_band(tmp_path: Path, saved) -> None:
    path = make_packed(tmp_path / "p.h5", n_tiles=3, size=16, dates=4, seed=2, bands=["NDVI"])
    tile = next(iter_tiles(path, split="test"))
    assert (tile.gap & tile.clear).any()  # a figure of reconstructions, not of "nothing"
    preds = {"linear": as_method("linear")(tile, tile.clear & ~tile.gap)}
    example_reconstructions(tile, preds, tmp_path / "ex.png", bands=["NDVI"])
    assert_png(tmp_path / "ex.png", min_side=50)
    assert f"Tile {tile.tile} (test, NDVI)" in saved[0].get_suptitle()
    assert [ax.get_title().split("\n")[1] for ax in saved[0].axes[:3]][1:] == ["linear", "truth"]
    assert "16 x 16 pixels a panel" in saved[0].get_suptitle()
    assert_labelled(saved[0])
