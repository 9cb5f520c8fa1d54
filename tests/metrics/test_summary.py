"""Summaries per evaluation set and method: headline from the pooled table, the per-date
convention beside it, pixel totals, bootstrap intervals from 10 tiles on, the best baseline and
paired differences, regions combined."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cloudfree.metrics.kernels import METRICS
from cloudfree.metrics.summary import (
    bootstrap_ci,
    combine_regions,
    pixel_weighted_mae,
    summarise,
    summary_columns,
)
from cloudfree.metrics.table import SETS, as_method, score_tiles

from .tiles import noisy_tile

Values = dict[str, list[list[float]]]  # method -> per tile -> per date


def _rows(values: Values, evaluation: str, n: int, pooled: bool) -> list[dict[str, object]]:
    rows = []
    for method, tiles in values.items():
        for i, dates in enumerate(tiles):
            keys = {"evaluation": evaluation, "tile": f"t{i}", "split": "test", "method": method}
            series = [float(np.mean(dates))] if pooled else dates
            for d, v in enumerate(series):
                row = dict(keys)
                if pooled:
                    row["dates"] = len(dates)
                else:
                    row["date"] = f"2021-01-0{d + 1}"
                for s in SETS:
                    row[f"n_{s}"] = n * (len(dates) if pooled else 1)
                    row.update({f"{m}_{s}": v for m in METRICS})
                rows.append(row)
    return rows


def _tables(
    values: Values, pooled: Values | None = None, *, evaluation: str = "transductive", n: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pooled, dates) tables: every metric of every set = the given value per date; the
    pooled value of a tile is the mean of its dates unless ``pooled`` gives it (one value a
    tile)."""
    dates = pd.DataFrame(_rows(values, evaluation, n, pooled=False))
    if pooled is None:
        table = pd.DataFrame(_rows(values, evaluation, n, pooled=True))
    else:
        table = pd.DataFrame(_rows(pooled, evaluation, n, pooled=True))
        count = {(m, f"t{i}"): len(d) for m, t in values.items() for i, d in enumerate(t)}
        table["dates"] = [count[k] for k in zip(table["method"], table["tile"], strict=True)]
        for s in SETS:
            table[f"n_{s}"] = n * table["dates"]
    return table, dates


def test_columns_headline_from_pooled_and_per_date_beside_it() -> None:
    values = {"linear": [[0.1, 0.3], [0.2, np.nan], [0.6, 0.6]], "mean": [[0.5, 0.5]]}
    pooled = {"linear": [[0.25], [0.2], [0.7]], "mean": [[0.4]]}  # not the dates' means
    out = summarise(*_tables(values, pooled))
    assert list(out.columns) == summary_columns()
    assert list(out.columns)[:6] == ["evaluation", "method", "tiles", "rows", "n_masked",
                                     "n_observed"]  # fmt: skip
    assert out["method"].tolist() == ["linear", "mean"]
    assert set(out["evaluation"]) == {"transductive"}
    lin = out.iloc[0]
    assert lin["tiles"] == 3 and lin["rows"] == 6
    assert lin["mae_masked"] == pytest.approx((0.25 + 0.2 + 0.7) / 3)  # the pooled values
    assert lin["ssim_observed"] == pytest.approx((0.25 + 0.2 + 0.7) / 3)
    assert lin["mae_masked_median"] == pytest.approx(0.25)
    for m in METRICS:  # per date: each tile's mean over its dates, then over tiles
        assert lin[f"{m}_masked_date"] == pytest.approx((0.2 + 0.2 + 0.6) / 3)
    assert lin["mae_masked_pixel"] == pytest.approx((0.1 + 0.3 + 0.2 + 1.2) / 5)
    assert lin["n_masked"] == 3 * 2 * 10  # pixels of the pooled table
    assert out.iloc[1]["tiles"] == 1 and out.iloc[1]["rows"] == 2
    assert out.iloc[1]["mae_masked"] == pytest.approx(0.4)
    assert out.iloc[1]["mae_masked_date"] == pytest.approx(0.5)


def test_bootstrap_interval_properties() -> None:
    rng = np.random.default_rng(5)
    few = rng.normal(0.1, 0.03, 5)
    many = rng.normal(0.1, 0.03, 200)
    low, high = bootstrap_ci(few, seed=3)
    assert low < few.mean() < high
    assert bootstrap_ci(few, seed=3) == (low, high)  # deterministic with the seed
    assert bootstrap_ci(many, seed=4) != bootstrap_ci(many, seed=3)
    low_m, high_m = bootstrap_ci(many, seed=3)
    assert low_m < many.mean() < high_m
    assert high_m - low_m < (high - low) / 2  # narrows with more tiles
    assert bootstrap_ci(np.array([0.2, np.nan])) == (0.2, 0.2)  # one tile: collapses
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([np.nan])))


def _many(n_tiles: int, seed: int = 6) -> Values:
    rng = np.random.default_rng(seed)
    return {"linear": [[v, v + 0.01] for v in rng.uniform(0.05, 0.2, n_tiles)]}


def test_intervals_from_ten_tiles_on() -> None:
    ten = summarise(*_tables(_many(10)), seed=1)
    pd.testing.assert_frame_equal(ten, summarise(*_tables(_many(10)), seed=1))
    row = ten.iloc[0]
    assert row["tiles"] == 10 and row["note"] == ""
    for s in ("masked", "observed"):
        for m in METRICS:
            assert row[f"{m}_{s}_ci_low"] < row[f"{m}_{s}"] < row[f"{m}_{s}_ci_high"]
    values = np.array([np.mean(d) for d in _many(10)["linear"]])
    assert (row["mae_masked_ci_low"], row["mae_masked_ci_high"]) == bootstrap_ci(values, seed=1)


@pytest.mark.parametrize("n_tiles", [1, 2, 9])
def test_no_interval_below_ten_tiles(n_tiles: int) -> None:
    values = _many(n_tiles)
    values["mean"] = [[0.3, 0.3]] * n_tiles
    out = summarise(*_tables(values)).set_index("method")
    interval = [c for c in out.columns if c.endswith(("_ci_low", "_ci_high"))]
    assert len(interval) == 2 * (2 * len(METRICS) + 2 + 2)
    assert out.loc["mean", interval].isna().all()
    # linear, the reference and the best baseline, differs from itself by exactly 0
    assert out.loc["linear", [c for c in interval if "_diff_" not in c]].isna().all()
    assert (out.loc["linear", [c for c in interval if "_diff_" in c]] == 0).all()
    assert (out["note"] == f"{n_tiles} scored tiles: intervals need at least 10").all()
    assert np.isfinite(out["mae_masked"]).all()  # the values themselves are there
    assert out.loc["mean", "mae_masked_diff_linear"] == pytest.approx(
        0.3 - np.mean([np.mean(d) for d in values["linear"]])
    )


def test_tiles_without_masked_pixels_do_not_count_for_intervals() -> None:
    values = _many(10)
    values["linear"][3] = [np.nan, np.nan]  # no masked pixel scored on tile t3
    row = summarise(*_tables(values)).iloc[0]
    assert row["tiles"] == 10
    assert row["note"] == "9 scored tiles: intervals need at least 10"
    assert np.isnan(row["mae_masked_ci_low"])
    assert row["mae_masked"] == pytest.approx(
        np.mean([np.mean(d) for i, d in enumerate(values["linear"]) if i != 3])
    )


def test_psnr_inf_does_not_poison_means() -> None:
    pooled, dates = _tables({"linear": [[30.0], [20.0]]})
    pooled.loc[0, "psnr_observed"] = np.inf  # tile t0: a perfect copy
    out = summarise(pooled, dates).iloc[0]
    assert out["psnr_observed"] == pytest.approx(20.0)
    all_inf = pooled.assign(psnr_observed=np.inf)
    assert math.isnan(summarise(all_inf, dates).iloc[0]["psnr_observed"])
    dates.loc[0, "psnr_masked"] = np.inf
    assert summarise(pooled, dates).iloc[0]["psnr_masked_date"] == pytest.approx(20.0)


def test_best_baseline_and_paired_differences_by_hand() -> None:
    values = {
        "model": [[0.01], [0.02], [0.03]],  # the lowest, but not a baseline
        "linear": [[0.05], [0.07], [0.06]],
        "harmonic": [[0.04], [0.03], [0.05]],  # the best baseline: mean 0.04
        "closest": [[0.02], [np.nan], [0.07]],  # mean 0.045 over the tiles it has
        "broken": [[np.nan], [np.nan], [np.nan]],  # no scored pixel: never the best
    }
    pooled, dates = _tables(values)
    pooled.loc[pooled["method"] == "model", "psnr_masked"] = [40.0, 30.0, 35.0]
    pooled.loc[pooled["method"] == "harmonic", "psnr_masked"] = [30.0, 31.0, 29.0]
    out = summarise(pooled, dates).set_index("method")
    assert (out["best_baseline"] == "harmonic").all()
    model = out.loc["model"]
    assert model["mae_masked_diff_best"] == pytest.approx(((0.01 - 0.04) + (0.02 - 0.03)
                                                           + (0.03 - 0.05)) / 3)  # fmt: skip
    assert model["psnr_masked_diff_best"] == pytest.approx((10 - 1 + 6) / 3)
    assert model["mae_masked_diff_linear"] == pytest.approx((0.01 + 0.02 + 0.03 - 0.18) / 3)
    assert model["rmse_masked_diff_linear"] == pytest.approx(-0.04)
    # paired on the tiles both have: closest lacks t1
    assert out.loc["closest", "mae_masked_diff_best"] == pytest.approx(
        ((0.02 - 0.04) + (0.07 - 0.05)) / 2
    )
    best = out.loc["harmonic"]
    for col in ("mae_masked_diff_best", "psnr_masked_diff_best"):
        assert best[col] == best[f"{col}_ci_low"] == best[f"{col}_ci_high"] == 0
    assert out.loc["linear", "mae_masked_diff_linear"] == 0
    assert np.isnan(out.loc["broken", "mae_masked_diff_best"])


def test_paired_differences_with_intervals() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.05, 0.3, 12)
    values = {
        "model": [[0.8 * v] for v in base],  # uniformly better
        "linear": [[v] for v in base],
        "worse": [[v + 0.05] for v in base],
    }
    out = summarise(*_tables(values)).set_index("method")
    assert (out["best_baseline"] == "linear").all()
    for col in ("mae_masked_diff_linear", "rmse_masked_diff_linear", "mae_masked_diff_best"):
        assert (out.loc["linear", [col, f"{col}_ci_low", f"{col}_ci_high"]] == 0).all()
        assert out.loc["model", col] == pytest.approx(-0.2 * base.mean())
        assert out.loc["model", f"{col}_ci_low"] < out.loc["model", col]
        assert out.loc["model", f"{col}_ci_high"] < 0  # beats it
        assert out.loc["worse", col] == pytest.approx(0.05)
        assert out.loc["worse", f"{col}_ci_low"] == pytest.approx(0.05)  # constant difference
    assert out.loc["model", "psnr_masked_diff_best"] == pytest.approx(-0.2 * base.mean())


def test_without_linear_or_baselines_the_differences_are_nan() -> None:
    out = summarise(*_tables({"model": [[0.1]], "mean": [[0.2]]})).set_index("method")
    assert out["mae_masked_diff_linear"].isna().all()
    assert out["rmse_masked_diff_linear_ci_high"].isna().all()
    assert (out["best_baseline"] == "mean").all()
    assert out.loc["model", "mae_masked_diff_best"] == pytest.approx(-0.1)
    alone = summarise(*_tables({"model": [[0.1]]})).iloc[0]
    assert alone["best_baseline"] == "" and np.isnan(alone["mae_masked_diff_best"])


def test_one_row_per_evaluation_set() -> None:
    transductive = _tables({"model": [[0.01], [0.02]], "linear": [[0.03], [0.04]],
                            "mean": [[0.05], [0.05]]})  # fmt: skip
    inductive = _tables(
        {"model": [[0.06]] * 3, "linear": [[0.08]] * 3, "mean": [[0.07]] * 3},
        evaluation="inductive",
    )
    pooled = pd.concat([transductive[0], inductive[0]], ignore_index=True)
    dates = pd.concat([transductive[1], inductive[1]], ignore_index=True)
    out = summarise(pooled, dates)
    assert list(zip(out["evaluation"], out["method"], strict=True)) == [
        (e, m) for e in ("transductive", "inductive") for m in ("model", "linear", "mean")
    ]
    assert out["tiles"].tolist() == [2, 2, 2, 3, 3, 3]
    assert out["rows"].tolist() == [2, 2, 2, 3, 3, 3]
    by = out.set_index(["evaluation", "method"])
    assert by.loc[("transductive", "model"), "mae_masked"] == pytest.approx(0.015)
    assert by.loc[("inductive", "model"), "mae_masked"] == pytest.approx(0.06)
    # each set has its own best baseline
    assert (by.loc["transductive", "best_baseline"] == "linear").all()
    assert (by.loc["inductive", "best_baseline"] == "mean").all()
    assert by.loc[("inductive", "model"), "mae_masked_diff_best"] == pytest.approx(-0.01)
    assert by.loc[("inductive", "model"), "mae_masked_diff_linear"] == pytest.approx(-0.02)


def test_pixel_weighted_mae_by_hand() -> None:
    table = pd.DataFrame(
        {
            "method": ["a", "a", "a", "b"],
            "n_masked": [1, 3, 0, 2],
            "mae_masked": [0.4, 0.2, np.nan, 0.1],
            "n_observed": [5, 5, 5, 0],
            "mae_observed": [0.0, 0.1, 0.2, np.nan],
        }
    )
    out = pixel_weighted_mae(table)
    assert list(out.columns) == ["method", "mae_masked_pixel", "mae_observed_pixel"]
    assert out["mae_masked_pixel"].tolist() == pytest.approx([(0.4 + 0.6) / 4, 0.1])
    assert out.loc[0, "mae_observed_pixel"] == pytest.approx(0.1)
    assert math.isnan(out.loc[1, "mae_observed_pixel"])


def test_metrics_summarise_keeps_totals() -> None:
    values = {"linear": [[0.1, 0.3], [0.2, 0.2]], "mean": [[0.5, 0.5], [0.4, 0.4]]}
    out = summarise(*_tables(values))
    assert out["n_masked"].tolist() == [40, 40]
    assert out["mae_masked_diff_linear"].tolist() == pytest.approx([0.0, 0.25])


def test_combine_regions() -> None:
    tables = _tables({"linear": [[0.1, 0.3]], "mean": [[0.5, 0.5]]})
    a = summarise(*tables)
    a.insert(0, "region", "africa")
    b = summarise(*(t.assign(method="linear") for t in tables))
    b.insert(0, "region", "europe")
    out = combine_regions([a, b])
    assert list(out.columns) == ["region", *summary_columns()]
    assert out["region"].tolist() == ["africa", "africa", "europe"]
    assert out["method"].tolist() == ["linear", "mean", "linear"]
    moved = a[[c for c in a.columns if c != "region"] + ["region"]]
    assert combine_regions([moved]).columns[0] == "region"
    with pytest.raises(ValueError, match="region"):
        combine_regions([summarise(*tables)])
    assert list(combine_regions([]).columns) == ["region"]


def test_summary_of_the_scored_tables() -> None:
    tiles = [noisy_tile("a", gap=True), noisy_tile("b", gap=False)]
    methods = {"linear": as_method("linear"), "truth": lambda tile, avail: tile.reflectance()}
    scores = score_tiles(tiles, methods, bands=("B02", "B03"))
    lin = scores.dates[scores.dates["method"] == "linear"].reset_index(drop=True)
    summary = summarise(scores.pooled, scores.dates)
    assert summary["method"].tolist() == ["linear", "truth"]
    row = summary.iloc[0]
    assert row["evaluation"] == "transductive"
    assert row["tiles"] == 1 and row["rows"] == 4 and row["n_masked"] == 33
    assert row["n_observed"] == 144 + 99 + 143 + 120
    m = lin["mae_masked"]
    pooled = (m[1] * 9 + m[3] * 24) / 33  # both bands at every pixel: weights by pixels
    assert row["mae_masked"] == pytest.approx(pooled)
    assert row["mae_masked_pixel"] == pytest.approx(pooled)
    assert row["mae_masked_date"] == pytest.approx(np.nanmean(m))
    assert row["note"] == "1 scored tiles: intervals need at least 10"
    assert summary.iloc[1]["mae_masked"] == 0
    assert summary.iloc[1]["mae_masked_diff_linear"] == pytest.approx(-row["mae_masked"])
    # every method but the model is a baseline: truth has the lower pooled masked MAE
    assert (summary["best_baseline"] == "truth").all()
    assert row["mae_masked_diff_best"] == pytest.approx(row["mae_masked"])


def test_summary_of_empty_tables() -> None:
    empty = pd.DataFrame(columns=["evaluation", "tile", "method", "n_masked", "n_observed"])
    out = summarise(empty, empty)
    assert out.empty and list(out.columns) == summary_columns()
