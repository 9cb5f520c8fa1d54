"""Experiments of an ablation compared: rows in order, seed means and their spread, paired
differences to the reference and to the best baseline, intervals from MIN_TILES tiles on, the
same-pixels check, the table across regions and the comparison figure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from cloudfree.errors import InputDataError
from cloudfree.metrics import figures
from cloudfree.metrics.compare import compare_experiments, comparison_columns, experiment_table
from cloudfree.metrics.figures import experiment_comparison
from cloudfree.metrics.summary import MIN_TILES

from .test_plotting import assert_png, capture

EVALUATIONS = ("transductive", "inductive")
Value = Callable[[int, str], float]  # (tile index, evaluation) -> value


def _mae(offset: float, wobble: float = 0.0) -> Value:
    return lambda i, ev: offset + 0.001 * i + wobble * (i % 3) + (0.003 if ev == "inductive" else 0)


def _rows(method: str, mae: Value, tiles: int, **extra: object) -> list[dict[str, object]]:
    rows = []
    for ev in EVALUATIONS:
        for i in range(tiles):
            err = mae(i, ev)
            rows.append(
                {
                    "evaluation": ev,
                    "tile": f"t{i}",
                    "split": "test",
                    "method": method,
                    "dates": 3,
                    "n_masked": 100 + i,
                    "mae_masked": err,
                    "rmse_masked": 1.5 * err,
                    "psnr_masked": -20 * np.log10(err),
                    "ssim_masked": 1.0 - 10 * err,
                    "sam_masked": 2.0,
                }
                | extra
            )
    return rows


def _models(tiles: int = 12) -> pd.DataFrame:
    rows = (
        _rows("model", _mae(0.010), tiles, experiment="A", run="A/seed0")
        + _rows("model", _mae(0.012), tiles, experiment="A", run="A/seed1")
        + _rows("model", _mae(0.013, 0.0005), tiles, experiment="B", run="B")
    )
    return pd.DataFrame(rows)


def _baselines(tiles: int = 12) -> pd.DataFrame:
    # closest is better on transductive, linear on inductive (closest gets worse there)
    closest = _mae(0.018, 0.0002)
    rows = _rows("linear", _mae(0.020), tiles) + _rows(
        "closest", lambda i, ev: closest(i, ev) + (0.01 if ev == "inductive" else 0), tiles
    )
    table = pd.DataFrame(rows)
    exact = (table["method"] == "closest") & (table["tile"] == "t0")
    table.loc[exact, "psnr_masked"] = np.inf  # a perfect copy: NaN, not an infinite mean
    return table


def _tile_values(table: pd.DataFrame, ev: str, column: str, **select: str) -> np.ndarray:
    """(run or method, tile) values of ``column`` as stored for the rows matching ``select``."""
    rows = table[table["evaluation"] == ev]
    for key, value in select.items():
        rows = rows[rows[key] == value]
    key = "run" if "run" in rows else "method"
    values = rows.pivot(index=key, columns="tile", values=column)
    values = values[[f"t{i}" for i in range(values.shape[1])]]
    return values.to_numpy(dtype=float)


def _finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(values), np.nan, values)


def _row(result: pd.DataFrame, ev: str, name: str) -> pd.Series:
    rows = result[(result["evaluation"] == ev) & (result["experiment"] == name)]
    if rows.empty:
        rows = result[(result["evaluation"] == ev) & (result["method"] == name)]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.fixture(scope="module")
def result() -> pd.DataFrame:
    return compare_experiments(_models(), _baselines(), "A", n_boot=500, seed=1)


def test_columns_and_row_order(result: pd.DataFrame) -> None:
    stats = [f"{m}_masked{s}" for m in ("mae", "psnr", "ssim") for s in ("", "_ci_low", "_ci_high")]
    stats = [
        c
        for m in ("mae", "psnr", "ssim")
        for c in (f"{m}_masked", *(f"{m}_masked_{s}" for s in ("ci_low", "ci_high", "seed_sd")))
    ]
    diffs = [
        f"{m}_masked_diff_{name}{s}"
        for name, metrics in (("reference", ("mae", "psnr", "ssim")), ("best", ("mae", "psnr")))
        for m in metrics
        for s in ("", "_ci_low", "_ci_high")
    ]
    head = ["evaluation", "experiment", "method", "kind", "reference", "seeds", "tiles"]
    expected = [*head, "n_masked", *stats, *diffs, "best_baseline", "note"]
    assert list(result.columns) == expected == comparison_columns()
    assert list(result["evaluation"]) == ["transductive"] * 4 + ["inductive"] * 4
    assert list(result["experiment"]) == ["A", "B", "", ""] * 2
    assert list(result["method"]) == ["model", "model", "linear", "closest"] * 2
    assert list(result["kind"]) == ["model", "model", "baseline", "baseline"] * 2
    assert list(result["reference"]) == [True, False, False, False] * 2
    assert list(result["seeds"]) == [2, 1, 1, 1] * 2
    assert set(result["tiles"]) == {12}
    assert set(result["n_masked"]) == {sum(100 + i for i in range(12))}
    assert set(result["note"]) == {""}
    # the reference's row comes first, whatever the order of the experiments in the table
    by_b = compare_experiments(_models(), _baselines(), "B", n_boot=50)
    assert list(by_b["experiment"]) == ["B", "A", "", ""] * 2
    assert list(by_b["reference"]) == [True, False, False, False] * 2


def test_seed_mean_and_seed_sd(result: pd.DataFrame) -> None:
    models = _models()
    for ev in EVALUATIONS:
        a = _row(result, ev, "A")
        for col in ("mae_masked", "psnr_masked", "ssim_masked"):
            runs = _tile_values(models, ev, col, experiment="A")  # (2 runs, 12 tiles)
            assert a[col] == pytest.approx(runs.mean(axis=0).mean(), rel=1e-12)
            assert a[f"{col}_seed_sd"] == pytest.approx(np.std(runs.mean(axis=1), ddof=1))
        # the two seeds differ by 0.002 on every tile: sd of the two means = 0.002 / sqrt(2)
        assert a["mae_masked_seed_sd"] == pytest.approx(0.002 / np.sqrt(2), rel=1e-9)
        b = _row(result, ev, "B")
        assert np.isnan(b["mae_masked_seed_sd"]) and np.isnan(
            _row(result, ev, "linear")["mae_masked_seed_sd"]
        )
    closest = _row(result, "transductive", "closest")
    tiles = _finite(_tile_values(_baselines(), "transductive", "psnr_masked", method="closest"))
    assert np.isfinite(closest["psnr_masked"])  # the inf tile is left out
    assert closest["psnr_masked"] == pytest.approx(np.nanmean(tiles), rel=1e-12)


def test_difference_to_the_reference(result: pd.DataFrame) -> None:
    models, baselines = _models(), _baselines()
    for ev in EVALUATIONS:
        a = _row(result, ev, "A")
        for m in ("mae", "psnr", "ssim"):
            col = f"{m}_masked"
            base = f"{col}_diff_reference"
            assert (a[base], a[f"{base}_ci_low"], a[f"{base}_ci_high"]) == (0.0, 0.0, 0.0)
            ref = _tile_values(models, ev, col, experiment="A").mean(axis=0)
            b = _tile_values(models, ev, col, experiment="B")[0]
            assert _row(result, ev, "B")[base] == pytest.approx((b - ref).mean(), rel=1e-12)
            lin = _tile_values(baselines, ev, col, method="linear")[0]
            assert _row(result, ev, "linear")[base] == pytest.approx((lin - ref).mean(), rel=1e-12)
        # B's MAE is 0.002 + 0.0005 * (i % 3) above A's seed mean on tile i
        expected = np.mean([0.002 + 0.0005 * (i % 3) for i in range(12)])
        assert _row(result, ev, "B")["mae_masked_diff_reference"] == pytest.approx(expected)
        closest = _finite(_tile_values(baselines, ev, "psnr_masked", method="closest")[0])
        ref = _tile_values(models, ev, "psnr_masked", experiment="A").mean(axis=0)
        got = _row(result, ev, "closest")["psnr_masked_diff_reference"]
        assert got == pytest.approx(np.nanmean(closest - ref), rel=1e-12)


def test_difference_to_the_best_baseline(result: pd.DataFrame) -> None:
    models, baselines = _models(), _baselines()
    for ev, best, other in (
        ("transductive", "closest", "linear"),
        ("inductive", "linear", "closest"),
    ):
        rows = result[result["evaluation"] == ev]
        assert set(rows["best_baseline"]) == {best}
        b = _row(result, ev, best)
        for m in ("mae", "psnr"):
            base = f"{m}_masked_diff_best"
            assert (b[base], b[f"{base}_ci_low"], b[f"{base}_ci_high"]) == (0.0, 0.0, 0.0)
        ref = _finite(_tile_values(baselines, ev, "mae_masked", method=best)[0])
        a = _tile_values(models, ev, "mae_masked", experiment="A").mean(axis=0)
        assert _row(result, ev, "A")["mae_masked_diff_best"] == pytest.approx((a - ref).mean())
        assert _row(result, ev, other)["mae_masked_diff_best"] > 0
        ref = _finite(_tile_values(baselines, ev, "psnr_masked", method=best)[0])
        a = _tile_values(models, ev, "psnr_masked", experiment="A").mean(axis=0)
        assert _row(result, ev, "A")["psnr_masked_diff_best"] == pytest.approx(np.nanmean(a - ref))
    assert "ssim_masked_diff_best" not in result


def test_intervals_contain_the_mean_and_depend_only_on_the_seed(result: pd.DataFrame) -> None:
    columns = ["mae_masked", "psnr_masked", "ssim_masked", "mae_masked_diff_reference",
               "psnr_masked_diff_reference", "mae_masked_diff_best"]  # fmt: skip
    for col in columns:
        low, high = result[f"{col}_ci_low"], result[f"{col}_ci_high"]
        assert (low.notna() & high.notna()).all(), col
        assert (low <= result[col]).all() and (result[col] <= high).all(), col
    b = _row(result, "transductive", "B")
    assert b["mae_masked_diff_reference_ci_low"] < b["mae_masked_diff_reference_ci_high"]
    assert b["mae_masked_diff_reference_ci_low"] > 0  # B is worse than A on every tile
    again = compare_experiments(_models(), _baselines(), "A", n_boot=500, seed=1)
    pd.testing.assert_frame_equal(again, result)


def test_no_intervals_below_min_tiles() -> None:
    few = MIN_TILES - 1
    result = compare_experiments(_models(few), _baselines(few), "A", n_boot=100)
    assert set(result["tiles"]) == {few}
    assert set(result["note"]) == {f"{few} scored tiles: intervals need at least {MIN_TILES}"}
    for col in ("mae_masked", "psnr_masked_diff_best", "mae_masked_diff_reference"):
        assert result[col].notna().all()
        b = result[result["experiment"] == "B"]
        assert b[f"{col}_ci_low"].isna().all() and b[f"{col}_ci_high"].isna().all()
    assert result["mae_masked_ci_low"].isna().all()


def test_without_baselines() -> None:
    result = compare_experiments(_models(), pd.DataFrame(), "A", n_boot=50)
    assert list(result["experiment"]) == ["A", "B"] * 2
    assert set(result["best_baseline"]) == {""}
    for m in ("mae", "psnr"):
        assert (
            result[[f"{m}_masked_diff_best{s}" for s in ("", "_ci_low", "_ci_high")]]
            .isna()
            .all()
            .all()
        )
    assert result["mae_masked_diff_reference"].notna().all()


def test_different_pixels_raise_naming_run_set_and_tile() -> None:
    models = _models()
    where = (models["run"] == "A/seed1") & (models["evaluation"] == "inductive")
    models.loc[where & (models["tile"] == "t3"), "n_masked"] += 1
    with pytest.raises(InputDataError, match="not scored on the same pixels") as err:
        compare_experiments(models, _baselines(), "A")
    assert "run 'A/seed1'" in str(err.value) and "'inductive'" in str(err.value)
    assert "'t3'" in str(err.value) and "104" in str(err.value) and "103" in str(err.value)

    baselines = _baselines()
    baselines.loc[(baselines["method"] == "linear") & (baselines["tile"] == "t5"), "n_masked"] = 7
    with pytest.raises(InputDataError, match=r"baseline 'linear'.*'transductive', tile 't5'"):
        compare_experiments(_models(), baselines, "A")


def test_missing_or_extra_tile_raises() -> None:
    models = _models()
    models = models.drop(models.index[(models["run"] == "B") & (models["tile"] == "t7")])
    with pytest.raises(
        InputDataError, match=r"run 'B'.*same pixels.*'transductive', tile 't7' is missing"
    ):
        compare_experiments(models, _baselines(), "A")
    extra = _baselines()
    row = extra.iloc[[0]].assign(evaluation="other")
    with pytest.raises(InputDataError, match=r"baseline 'linear'.*'other', tile 't0' is not in"):
        compare_experiments(_models(), pd.concat([extra, row]), "A")


def test_duplicate_rows_raise() -> None:
    models = _models()
    with pytest.raises(InputDataError, match=r"run 'B' has more than one row.*'t2'"):
        compare_experiments(
            pd.concat([models, models[(models["run"] == "B")].iloc[[2]]]), _baselines(), "A"
        )


def test_unknown_reference_names_the_experiments() -> None:
    with pytest.raises(ValueError, match="'C' is not among the experiments: A, B"):
        compare_experiments(_models(), _baselines(), "C")


def test_experiment_table_stacks_regions(result: pd.DataFrame) -> None:
    other = compare_experiments(_models(), _baselines(), "B", n_boot=50)
    table = experiment_table({"alps": result, "delta": other})
    assert list(table.columns) == ["region", *comparison_columns()]
    assert list(table["region"]) == ["alps"] * len(result) + ["delta"] * len(other)
    assert list(table["experiment"][len(result) :]) == list(other["experiment"])
    assert list(experiment_table({}).columns) == ["region", *comparison_columns()]


@pytest.mark.parametrize("tiles", [12, MIN_TILES - 1])
def test_figure_with_and_without_intervals(tmp_path: Path, monkeypatch, tiles: int) -> None:
    saved = capture(monkeypatch, figures)
    comparison = compare_experiments(_models(tiles), _baselines(tiles), "A", n_boot=100)
    path = tmp_path / "compare.png"
    experiment_comparison(comparison, path, region="alps")
    assert_png(path)
    image = imread(path)
    assert image.size > 0 and image.shape[0] > 0 and image.shape[1] > 0
    (fig,) = saved
    assert len(fig.axes) == 2  # one panel per evaluation set
    assert "alps" in fig.get_suptitle()
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["A, 2 seeds (reference)", "B", "linear", "closest"]
        assert ax.get_xlabel() == (
            "masked MAE − reference (reflectance); < 0: better than the reference"
        )
        bars = [c for c in ax.collections if len(c.get_segments())]
        assert (len(bars) > 0) == (tiles >= MIN_TILES)  # no bars without intervals
        if tiles < MIN_TILES:
            assert "intervals need at least" in ax.get_title()


def test_figure_of_an_empty_comparison(tmp_path: Path) -> None:
    experiment_comparison(pd.DataFrame(columns=comparison_columns()), tmp_path / "empty.png")
    assert_png(tmp_path / "empty.png", min_side=50)
