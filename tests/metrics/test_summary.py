"""Per-method summaries: tile-level means, pixel totals, bootstrap intervals, paired differences,
regions combined."""

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
from cloudfree.metrics.table import SETS, as_method, evaluate_tiles

from .tiles import noisy_tile


def _table(values: dict[str, list[list[float]]], n_masked: int = 10) -> pd.DataFrame:
    """Rows per method, tile and date; every metric of every set = the given value."""
    rows = []
    for method, tiles in values.items():
        for i, dates in enumerate(tiles):
            for d, v in enumerate(dates):
                row = {"tile": f"t{i}", "split": "test", "date": f"2021-01-0{d + 1}"}
                row["method"] = method
                for s in SETS:
                    row[f"n_{s}"] = n_masked
                    row.update({f"{m}_{s}": v for m in METRICS})
                rows.append(row)
    return pd.DataFrame(rows)


def test_columns_and_tile_means_by_hand() -> None:
    table = _table({"linear": [[0.1, 0.3], [0.2, np.nan], [0.6, 0.6]], "mean": [[0.5, 0.5]]})
    out = summarise(table)
    assert list(out.columns) == summary_columns("linear")
    assert list(out.columns)[:5] == ["method", "tiles", "rows", "n_masked", "n_observed"]
    assert out["method"].tolist() == ["linear", "mean"]
    lin = out.iloc[0]
    assert lin["tiles"] == 3 and lin["rows"] == 6
    assert lin["mae_masked"] == pytest.approx((0.2 + 0.2 + 0.6) / 3)  # per-tile means first
    assert lin["mae_masked_median"] == pytest.approx(0.2)
    assert lin["mae_masked_pixel"] == pytest.approx((0.1 + 0.3 + 0.2 + 1.2) / 5)
    assert out.iloc[1]["tiles"] == 1 and out.iloc[1]["rows"] == 2


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


def test_summary_intervals_over_tiles() -> None:
    rng = np.random.default_rng(6)
    table = _table({"linear": [[v, v + 0.01] for v in rng.uniform(0.05, 0.2, 12)]})
    a = summarise(table, seed=1)
    b = summarise(table, seed=1)
    pd.testing.assert_frame_equal(a, b)
    for s in ("masked", "observed"):
        for m in METRICS:
            row = a.iloc[0]
            assert row[f"{m}_{s}_ci_low"] < row[f"{m}_{s}"] < row[f"{m}_{s}_ci_high"]
    one = summarise(_table({"linear": [[0.1, 0.3]]})).iloc[0]
    assert one["mae_masked_ci_low"] == one["mae_masked"] == one["mae_masked_ci_high"] == 0.2


def test_psnr_inf_does_not_poison_means() -> None:
    table = _table({"linear": [[30.0, 40.0], [20.0, 20.0]]})
    table.loc[1, "psnr_observed"] = np.inf  # tile t0: 30, inf -> 30
    out = summarise(table).iloc[0]
    assert out["psnr_observed"] == pytest.approx(25.0)
    assert np.isfinite(out["psnr_observed_ci_high"])
    all_inf = table.assign(psnr_observed=np.inf)
    assert math.isnan(summarise(all_inf).iloc[0]["psnr_observed"])


def test_paired_difference_to_baseline() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.05, 0.3, 8)
    table = _table(
        {
            "model": [[0.8 * v, 0.8 * v] for v in base],  # uniformly better
            "linear": [[v, v] for v in base],
            "worse": [[v + 0.05, v + 0.05] for v in base],
        }
    )
    out = summarise(table, baseline="linear").set_index("method")
    for m in ("mae", "rmse"):
        col = f"{m}_masked_diff_linear"
        assert (out.loc["linear", [col, f"{col}_ci_low", f"{col}_ci_high"]] == 0).all()
        assert out.loc["model", col] == pytest.approx(-0.2 * base.mean())
        assert out.loc["model", f"{col}_ci_low"] < out.loc["model", col]
        assert out.loc["model", f"{col}_ci_high"] < 0
        assert out.loc["worse", col] == pytest.approx(0.05)
        assert out.loc["worse", f"{col}_ci_low"] == pytest.approx(0.05)  # constant difference
    absent = summarise(table, baseline="closest")
    assert "mae_masked_diff_closest" in absent
    assert absent["mae_masked_diff_closest"].isna().all()
    assert absent["rmse_masked_diff_closest_ci_high"].isna().all()


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
    table = _table({"linear": [[0.1, 0.3], [0.2, 0.2]], "mean": [[0.5, 0.5], [0.4, 0.4]]})
    out = summarise(table)
    assert list(out.columns)[:5] == ["method", "tiles", "rows", "n_masked", "n_observed"]
    assert out["n_masked"].tolist() == [40, 40]
    assert out["mae_masked_diff_linear"].tolist() == pytest.approx([0.0, 0.25])


def test_combine_regions() -> None:
    table = _table({"linear": [[0.1, 0.3]], "mean": [[0.5, 0.5]]})
    a = summarise(table)
    a.insert(0, "region", "africa")
    b = summarise(table.assign(method="linear"))
    b.insert(0, "region", "europe")
    out = combine_regions([a, b])
    assert list(out.columns) == ["region", *summary_columns("linear")]
    assert out["region"].tolist() == ["africa", "africa", "europe"]
    assert out["method"].tolist() == ["linear", "mean", "linear"]
    moved = a[[c for c in a.columns if c != "region"] + ["region"]]
    assert combine_regions([moved]).columns[0] == "region"
    with pytest.raises(ValueError, match="region"):
        combine_regions([summarise(table)])
    assert list(combine_regions([]).columns) == ["region"]


def test_summary_of_an_evaluation_table() -> None:
    tiles = [noisy_tile("a", gap=True), noisy_tile("b", gap=False)]
    methods = {"linear": as_method("linear"), "truth": lambda tile, avail: tile.reflectance()}
    df = evaluate_tiles(tiles, methods, bands=("B02", "B03"))
    lin = df[df["method"] == "linear"].reset_index(drop=True)
    summary = summarise(df)
    assert summary["method"].tolist() == ["linear", "truth"]
    row = summary.iloc[0]
    assert row["rows"] == 4 and row["n_masked"] == 33
    assert row["n_observed"] == 144 + 99 + 143 + 120
    m = lin["mae_masked"]
    assert row["mae_masked"] == pytest.approx(np.nanmean(m))
    assert row["mae_masked_pixel"] == pytest.approx((m[1] * 9 + m[3] * 24) / 33)
    assert summary.iloc[1]["mae_masked"] == 0
    assert summary.iloc[1]["mae_masked_diff_linear"] == pytest.approx(-row["mae_masked"])


def test_summary_of_an_empty_table() -> None:
    out = summarise(_table({}).reindex(columns=["tile", "method", "n_masked", "n_observed"]))
    assert out.empty and list(out.columns) == summary_columns("linear")
