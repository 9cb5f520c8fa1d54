"""The evaluation tables: their columns, the pixel sets, the product rule, per-band errors,
difficulty, the pooled table and its evaluation sets, and errors."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.metrics.kernels import ssim_map
from cloudfree.metrics.table import (
    METRIC_COLUMNS,
    Scores,
    as_method,
    evaluate_tiles,
    metric_columns,
    pooled_columns,
    score_tiles,
)
from cloudfree.packed import TileSeries
from cloudfree.progress import Progress

from .tiles import OFFSETS, hand_tile, noisy_tile, offset_method


def test_evaluate_tiles_table() -> None:
    tiles = [noisy_tile("a", gap=True), noisy_tile("b", gap=False)]
    methods = {"linear": as_method("linear"), "truth": lambda tile, avail: tile.reflectance()}
    df = evaluate_tiles(tiles, methods, bands=("B02", "B03"))
    assert tuple(df.columns) == metric_columns(("B02", "B03"))
    assert METRIC_COLUMNS[:7] == (
        "evaluation", "tile", "split", "date", "method", "n_masked", "mae_masked"
    )  # fmt: skip
    assert METRIC_COLUMNS[11:13] == ("n_observed", "mae_observed")
    assert METRIC_COLUMNS[17:19] == ("n_all", "mae_all")
    assert METRIC_COLUMNS[23:25] == ("mae_masked_B01", "mae_masked_B02")
    assert METRIC_COLUMNS[-3:] == ("mae_masked_B12", "cloud_fraction", "gap_days")
    assert len(METRIC_COLUMNS) == 5 + 3 * 6 + 13 + 2
    assert set(df["evaluation"]) == {"transductive"}  # the default set
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


def test_pooled_columns() -> None:
    columns = pooled_columns(("B02", "B03"))
    assert columns[:6] == ("evaluation", "tile", "split", "method", "dates", "n_masked")
    assert "date" not in columns
    assert columns[5:] == metric_columns(("B02", "B03"))[5:]  # the same scores, in order
    assert len(pooled_columns(S2_L1C_BANDS)) == 5 + 3 * 6 + 13 + 2


def test_pooled_table_of_the_hand_tile() -> None:
    scores = score_tiles([hand_tile()], {"m": offset_method}, bands=("B02", "B03"))
    assert isinstance(scores, Scores)
    assert tuple(scores.pooled.columns) == pooled_columns(("B02", "B03"))
    pd.testing.assert_frame_equal(
        scores.dates, evaluate_tiles([hand_tile()], {"m": offset_method}, ("B02", "B03"))
    )
    (row,) = scores.pooled.to_dict("records")
    assert (row["evaluation"], row["tile"], row["split"], row["method"], row["dates"]) == (
        "transductive", "h", "test", "m", 4
    )  # fmt: skip
    # masked: t1 p0, p1 and t3 p0; observed 2 + 1 + 2 + 2; the nodata pixel in neither
    assert (row["n_masked"], row["n_observed"], row["n_all"]) == (3, 7, 10)
    assert row["mae_masked"] == pytest.approx(0.02)  # (0.01 + 0.03) / 2 on every pixel
    assert row["rmse_masked"] == pytest.approx(math.sqrt((0.01**2 + 0.03**2) / 2))
    assert row["mae_masked_B02"] == pytest.approx(0.01)
    assert row["mae_masked_B03"] == pytest.approx(0.03)
    assert row["mae_observed"] == 0 and row["psnr_observed"] == math.inf
    assert row["mae_all"] == pytest.approx(3 * 0.04 / (10 * 2))
    # 11 valid pixels, 7 seen; masked pixels 10, 15 and 15 days from a seen date
    assert row["cloud_fraction"] == pytest.approx(1 - 7 / 11)
    assert row["gap_days"] == pytest.approx((10 + 15 + 15) / 3)


def test_pooled_and_per_date_tables_differ_by_pixel_counts() -> None:
    def growing(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        """OFFSETS at t1's two masked pixels, twice OFFSETS at t3's one."""
        out = offset_method(tile, available)
        out[3] += OFFSETS[:, None, None] * (tile.clear & ~available)[3]
        return out

    scores = score_tiles([hand_tile()], {"g": growing}, bands=("B02", "B03"))
    by_date = scores.dates.loc[scores.dates["n_masked"] > 0, "mae_masked"].tolist()
    assert by_date == pytest.approx([0.02, 0.04])  # their mean: 0.03
    pooled = scores.pooled.loc[0, "mae_masked"]
    assert pooled == pytest.approx((2 * 0.04 + 1 * 0.08) / (3 * 2))
    assert pooled == pytest.approx(0.08 / 3)


def test_observed_pixels_are_pasted_back_for_masked_and_all_only() -> None:
    """A method that moves the pixels it saw: the product carries the input there, so masked
    and all score the product; observed scores what the method returned."""

    def shifted(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        truth = tile.reflectance().astype(np.float64)
        return np.where(np.isfinite(truth), truth, 0.5) + 0.05

    tile = noisy_tile("a", gap=True)
    scores = score_tiles([tile], {"s": shifted}, bands=("B02", "B03"))
    df = scores.dates
    truth = tile.reflectance().astype(np.float64)
    available = tile.clear & ~tile.gap
    raw = shifted(tile, available)
    product = np.where(available[:, None], truth, raw)
    assert df["mae_observed"].tolist() == pytest.approx([0.05] * 4)  # the raw output
    masked = df["n_masked"] > 0
    assert df.loc[masked, "mae_masked"].tolist() == pytest.approx([0.05, 0.05])
    # all: only the masked pixels carry an error once the observed ones are pasted back
    assert df["mae_all"].tolist() == pytest.approx(
        [0.05 * n / a for n, a in zip(df["n_masked"], df["n_all"], strict=True)]
    )
    assert df.loc[0, "mae_all"] == 0 and df.loc[0, "psnr_all"] == math.inf
    for t in range(4):
        observed = ssim_map(raw[t], truth[t])[:, available[t]].mean()
        assert df.loc[t, "ssim_observed"] == pytest.approx(observed)
        every = ssim_map(product[t], truth[t])[:, tile.clear[t]].mean()
        assert df.loc[t, "ssim_all"] == pytest.approx(every)
        if masked[t]:
            hidden = ssim_map(product[t], truth[t])[:, (tile.clear & tile.gap)[t]].mean()
            assert df.loc[t, "ssim_masked"] == pytest.approx(hidden)
            assert hidden != pytest.approx(ssim_map(raw[t], truth[t])[:, tile.gap[t]].mean())
    row = scores.pooled.iloc[0]
    assert row["mae_observed"] == pytest.approx(0.05) and row["mae_masked"] == pytest.approx(0.05)
    assert row["mae_all"] == pytest.approx(0.05 * 33 / row["n_all"])


def test_evaluation_labels_split_the_pooled_rows() -> None:
    def halves(tile: TileSeries) -> np.ndarray:
        return np.array(["transductive", "transductive", "inductive", "inductive"], dtype=object)

    scores = score_tiles([hand_tile()], {"m": offset_method, "l": as_method("linear")},
                         bands=("B02", "B03"), evaluation=halves)  # fmt: skip
    assert scores.dates["evaluation"].tolist() == [*halves(hand_tile())] * 2
    pooled = scores.pooled.set_index(["method", "evaluation"])
    assert list(pooled.index) == [
        ("m", "transductive"), ("m", "inductive"), ("l", "transductive"), ("l", "inductive")
    ]  # fmt: skip
    assert (pooled["dates"] == 2).all()
    first, second = pooled.loc[("m", "transductive")], pooled.loc[("m", "inductive")]
    assert (first["n_masked"], second["n_masked"]) == (2, 1)
    assert (first["n_observed"], second["n_observed"]) == (3, 4)
    assert first["mae_masked"] == pytest.approx(0.02) == second["mae_masked"]
    # dates 2, 3: 5 valid pixels, 4 seen; dates 0, 1: 6 valid, 3 seen
    assert second["cloud_fraction"] == pytest.approx(1 - 4 / 5)
    assert first["cloud_fraction"] == pytest.approx(1 - 3 / 6)
    # the method sees the whole tile: distances count every date of it, as in the per-date
    # table (t1: p0 10 d to day 0, p1 15 d to day 25; t3: p0 15 d to day 25)
    assert first["gap_days"] == pytest.approx((10 + 15) / 2)
    assert second["gap_days"] == pytest.approx(15.0)


def test_evaluation_labels_must_match_the_dates() -> None:
    with pytest.raises(ValueError, match=r"tile h: \(3,\) evaluation labels for 4 dates"):
        score_tiles([hand_tile()], {"m": offset_method}, ("B02", "B03"),
                    evaluation=lambda tile: np.array(["a", "b", "c"]))  # fmt: skip
    inductive = score_tiles([hand_tile()], {"m": offset_method}, ("B02", "B03"), "inductive")
    assert (
        set(inductive.dates["evaluation"]) == set(inductive.pooled["evaluation"]) == {"inductive"}
    )


def test_pooled_table_of_no_tile() -> None:
    scores = score_tiles([noisy_tile("b", gap=False)], {"l": as_method("linear")}, ("B02", "B03"))
    assert scores.dates.empty and scores.pooled.empty
    assert tuple(scores.pooled.columns) == pooled_columns(("B02", "B03"))


def test_scoring_logs_progress_per_tile_scored_or_not(caplog) -> None:
    now = [0.0]
    log = logging.getLogger("cloudfree.test")
    progress = Progress(log, "scoring", 3, every=0, clock=lambda: now[0])

    def tiles():  # a tile every 10 s
        for name, gap in (("a", True), ("b", False), ("c", True)):
            now[0] += 10.0
            yield noisy_tile(name, gap=gap)

    with caplog.at_level(logging.INFO, logger="cloudfree.test"):
        scores = score_tiles(tiles(), {"m": offset_method}, ("B02", "B03"), progress=progress)
    assert sorted(set(scores.dates["tile"])) == ["a", "c"]
    # i of N, elapsed and the ETA of the tiles left, after every tile (every=0)
    assert [r.getMessage() for r in caplog.records] == [
        "scoring: 1 of 3 (33 %), 10 s elapsed, ETA 20 s",
        "scoring: 2 of 3 (67 %), 20 s elapsed, ETA 10 s",
        "scoring: 3 of 3 (100 %), 30 s elapsed",
    ]
