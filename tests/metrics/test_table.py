"""The evaluation table: its columns, the pixel sets, per-band errors, difficulty and errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.metrics.table import METRIC_COLUMNS, as_method, evaluate_tiles, metric_columns
from cloudfree.packed import TileSeries

from .tiles import hand_tile, noisy_tile, offset_method


def test_evaluate_tiles_table() -> None:
    tiles = [noisy_tile("a", gap=True), noisy_tile("b", gap=False)]
    methods = {"linear": as_method("linear"), "truth": lambda tile, avail: tile.reflectance()}
    df = evaluate_tiles(tiles, methods, bands=("B02", "B03"))
    assert tuple(df.columns) == metric_columns(("B02", "B03"))
    assert METRIC_COLUMNS[:6] == ("tile", "split", "date", "method", "n_masked", "mae_masked")
    assert METRIC_COLUMNS[10:12] == ("n_observed", "mae_observed")
    assert METRIC_COLUMNS[16:18] == ("n_all", "mae_all")
    assert METRIC_COLUMNS[22:24] == ("mae_masked_B01", "mae_masked_B02")
    assert METRIC_COLUMNS[-3:] == ("mae_masked_B12", "cloud_fraction", "gap_days")
    assert len(METRIC_COLUMNS) == 4 + 3 * 6 + 13 + 2
    assert (df["n_all"] == df["n_masked"] + df["n_observed"]).all()
    assert len(df) == 4 * 2  # tile b has no gap: skipped
    assert set(df["tile"]) == {"a"} and set(df["split"]) == {"test"}
    assert df["method"].tolist() == ["linear"] * 4 + ["truth"] * 4  # tile, method, date
    lin = df[df["method"] == "linear"].reset_index(drop=True)
    assert lin["date"].tolist() == tiles[0].dates
    assert lin["n_masked"].tolist() == [0, 9, 0, 24]
    assert lin["n_observed"].tolist() == [144, 144 - 36 - 9, 143, 144 - 24]
    assert np.isnan(lin.loc[0, "mae_masked"]) and lin.loc[1, "mae_masked"] > 0
    assert (lin["mae_observed"] == 0).all()  # baselines return the input where available
    perfect = df[df["method"] == "truth"]
    assert (perfect.loc[perfect["n_masked"] > 0, "mae_masked"] == 0).all()
    assert perfect.loc[perfect["n_masked"] > 0, "ssim_masked"].tolist() == pytest.approx([1, 1])


def test_evaluate_tiles_rejects_wrong_shapes() -> None:
    def bad(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return tile.reflectance()[:, :1]

    with pytest.raises(InputDataError, match=r"tile a.*'bad'"):
        evaluate_tiles([noisy_tile("a", gap=True)], {"bad": bad}, bands=("B02", "B03"))
    with pytest.raises(InputDataError, match=r"tile a: 2 bands, expected 13"):
        evaluate_tiles([noisy_tile("a", gap=True)], {"linear": as_method("linear")}, S2_L1C_BANDS)


def test_evaluate_tiles_empty() -> None:
    df = evaluate_tiles([], {"linear": as_method("linear")}, S2_L1C_BANDS)
    assert isinstance(df, pd.DataFrame) and df.empty
    assert tuple(df.columns) == METRIC_COLUMNS


def test_evaluate_tiles_missing_method_names_tile_and_method() -> None:
    def lookup(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return {}[tile.tile]

    def no_file(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        raise InputDataError(f"eval.h5: no prediction for tile {tile.tile}")

    tiles = [noisy_tile("a", gap=True)]
    for name, fn in (("lookup", lookup), ("model", no_file), ("none", None)):
        with pytest.raises(InputDataError, match=rf"tile a, method '{name}'"):
            evaluate_tiles(tiles, {name: fn}, bands=("B02", "B03"))  # type: ignore[dict-item]
    with pytest.raises(InputDataError, match=r"tile a, method 'nothing'"):
        evaluate_tiles(tiles, {"nothing": lambda t, a: None}, bands=("B02", "B03"))


def test_methods_see_the_input_only() -> None:
    seen: list[np.ndarray] = []

    def spy(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        seen.append(available.copy())
        available[:] = False  # a method that scribbles on its input changes nothing
        return tile.reflectance()

    tile = hand_tile()
    df = evaluate_tiles([tile], {"a": spy, "b": spy}, bands=("B02", "B03"))
    expected = tile.clear & ~tile.gap
    assert len(seen) == 2 and all((s == expected).all() for s in seen)
    assert df.loc[df["method"] == "b", "n_observed"].tolist() == [2, 1, 2, 2]


def test_hand_tile_sets_band_mae_and_difficulty() -> None:
    df = evaluate_tiles([hand_tile()], {"m": offset_method}, bands=("B02", "B03"))
    assert list(df.columns)[-4:] == [
        "mae_masked_B02",
        "mae_masked_B03",
        "cloud_fraction",
        "gap_days",
    ]
    assert df["n_masked"].tolist() == [0, 2, 0, 1]
    assert df["n_observed"].tolist() == [2, 1, 2, 2]
    assert df["n_all"].tolist() == [2, 3, 2, 3]
    masked = df["n_masked"] > 0
    assert df.loc[masked, "mae_masked"].tolist() == pytest.approx([0.02, 0.02])
    assert df.loc[masked, "rmse_masked"].tolist() == pytest.approx([math.sqrt(0.0005)] * 2)
    assert df.loc[masked, "mae_masked_B02"].tolist() == pytest.approx([0.01, 0.01])
    assert df.loc[masked, "mae_masked_B03"].tolist() == pytest.approx([0.03, 0.03])
    assert df[~masked][["mae_masked", "mae_masked_B02", "mae_masked_B03"]].isna().all().all()
    assert (df["mae_observed"] == 0).all()
    # all = masked + observed: (0.01 + 0.03) per masked pixel over 2 bands x n_all pixels
    assert df["mae_all"].tolist() == pytest.approx([0.0, 0.04 * 2 / 6, 0.0, 0.04 / 6])
    assert df.loc[1, "rmse_all"] == pytest.approx(math.sqrt(2 * 0.001 / 6))
    assert df["psnr_all"].iloc[0] == math.inf
    assert df["cloud_fraction"].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0, 1 / 3])
    gap_days = df["gap_days"].to_numpy()
    assert np.isnan(gap_days[[0, 2]]).all()
    # t1 (day 10): p0 -> day 0 (10 d), p1 -> day 25 (15 d, cloudy at day 0); t3: p0 -> day 25
    assert gap_days[[1, 3]].tolist() == pytest.approx([12.5, 15.0])


def test_default_bands_table_columns() -> None:
    tile = hand_tile()
    tile.s2 = np.repeat(tile.s2[:, :1], len(S2_L1C_BANDS), axis=1)
    df = evaluate_tiles([tile], {"linear": as_method("linear")}, S2_L1C_BANDS)
    assert tuple(df.columns) == METRIC_COLUMNS
    band_cols = [f"mae_masked_{b}" for b in S2_L1C_BANDS]
    masked = df["n_masked"] > 0
    np.testing.assert_allclose(
        df.loc[masked, band_cols].mean(axis=1), df.loc[masked, "mae_masked"], rtol=1e-9
    )


def test_as_method_is_the_named_baseline() -> None:
    tile = hand_tile()
    available = tile.clear & ~tile.gap
    out = as_method("closest")(tile, available)
    assert out.shape == tile.reflectance().shape
    # p0 at day 10 is hidden: the closest available date is day 0 (reflectance 0.1, 0.2)
    assert out[1, :, 0, 0].tolist() == pytest.approx([0.1, 0.2])
    assert as_method("closest").__name__ == "baseline_closest"
