"""Metrics against hand-computed values and scikit-image; evaluation table layout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from rasterio.crs import CRS
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cloudfree.baselines import as_method
from cloudfree.errors import InputDataError
from cloudfree.metrics import (
    METRIC_COLUMNS,
    evaluate_tiles,
    mae,
    psnr,
    rmse,
    sam,
    score_series,
    ssim,
    summarise,
)
from cloudfree.packing import TileSeries


def _pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth = np.zeros((2, 2, 2), dtype=np.float32)
    pred = truth.copy()
    pred[0, 0, 0], pred[1, 0, 0] = 0.1, -0.3  # pixel (0, 0): errors 0.1, 0.3
    pred[0, 0, 1], pred[1, 0, 1] = 0.2, 0.0  # pixel (0, 1): errors 0.2, 0.0
    pred[:, 1, :] = 5.0  # not selected
    selection = np.array([[True, True], [False, False]])
    return pred, truth, selection


def test_mae_rmse_psnr_by_hand() -> None:
    pred, truth, sel = _pair()
    assert mae(pred, truth, sel) == pytest.approx(0.15, rel=1e-6)  # (0.1+0.3+0.2+0)/4
    expected_rmse = math.sqrt((0.01 + 0.09 + 0.04) / 4)
    assert rmse(pred, truth, sel) == pytest.approx(expected_rmse, rel=1e-6)
    assert psnr(pred, truth, sel) == pytest.approx(20 * math.log10(1 / expected_rmse), rel=1e-6)
    assert psnr(truth, truth, sel) == math.inf


def test_psnr_matches_skimage() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((3, 16, 16))
    pred = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    full = np.ones((16, 16), bool)
    ref = peak_signal_noise_ratio(truth, pred, data_range=1.0)
    assert psnr(pred, truth, full) == pytest.approx(ref, rel=1e-9)


def test_sam_angles() -> None:
    truth = np.zeros((2, 1, 4), dtype=np.float32)
    pred = np.zeros_like(truth)
    truth[:, 0, 0], pred[:, 0, 0] = [0, 1], [1, 0]  # orthogonal: 90
    truth[:, 0, 1], pred[:, 0, 1] = [0.2, 0.4], [0.1, 0.2]  # same direction: 0
    truth[:, 0, 3], pred[:, 0, 3] = [0.3, 0.0], [0.0, 0.0]  # zero prediction: 90
    sel = np.array([[True, False, False, False]])
    assert sam(pred, truth, sel) == pytest.approx(90.0)
    assert sam(pred, truth, np.array([[False, True, False, False]])) == pytest.approx(0.0, abs=1e-4)
    assert sam(pred, truth, np.array([[False, False, True, False]])) == 0.0  # both zero
    assert sam(pred, truth, np.array([[False, False, False, True]])) == pytest.approx(90.0)
    assert sam(pred, truth, np.array([[True, True, False, False]])) == pytest.approx(45.0, abs=1e-4)


def test_ssim_matches_skimage_full_map_mean() -> None:
    rng = np.random.default_rng(2)
    truth = rng.random((3, 24, 20))
    pred = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    pred[1] = truth[1] * 0.5 + 0.2
    full = np.ones((24, 20), bool)
    maps = [
        structural_similarity(
            truth[b],
            pred[b],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            full=True,
        )[1]
        for b in range(3)
    ]
    expected = float(np.mean([m.mean() for m in maps]))
    assert ssim(pred, truth, full) == pytest.approx(expected, abs=1e-6)
    assert ssim(truth, truth, full) == pytest.approx(1.0, abs=1e-9)


def test_ssim_with_nodata_outside_the_selection() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random((2, 16, 16))
    pred = truth + 0.05
    truth[:, :, :4] = np.nan
    pred[:, :3, :] = np.nan
    sel = np.zeros((16, 16), bool)
    sel[8:, 8:] = True
    sel[:, :2] = True  # includes nodata truth pixels: they are not scored
    value = ssim(pred, truth, sel)
    assert np.isfinite(value) and 0 < value <= 1
    filled_pred, filled_truth = np.nan_to_num(pred), np.nan_to_num(truth)
    scored = sel & np.isfinite(truth).all(axis=0)
    maps = [
        structural_similarity(
            filled_truth[b],
            filled_pred[b],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            full=True,
        )[1]
        for b in range(2)
    ]
    assert value == pytest.approx(float(np.mean([m[scored] for m in maps])), abs=1e-6)
    assert math.isnan(ssim(pred, truth, np.isnan(pred[0])))  # NaN predictions are visible


def test_empty_selection_is_nan() -> None:
    pred, truth, _ = _pair()
    empty = np.zeros((2, 2), bool)
    for fn in (mae, rmse, psnr, sam, ssim):
        assert math.isnan(fn(pred, truth, empty)), fn.__name__
    rows = score_series(pred[None], truth[None], {"masked": empty[None]})
    assert rows[0]["n_masked"] == 0
    assert all(math.isnan(rows[0][f"{m}_masked"]) for m in ("mae", "rmse", "psnr", "ssim", "sam"))


def test_score_series_keys_and_values() -> None:
    pred, truth, sel = _pair()
    rows = score_series(
        np.stack([pred, truth]), np.stack([truth, truth]), {"a": np.stack([sel, sel]),
                                                            "b": np.stack([~sel, sel])}
    )  # fmt: skip
    assert len(rows) == 2
    assert list(rows[0]) == [
        f"{m}_{s}" for s in ("a", "b") for m in ("n", "mae", "rmse", "psnr", "ssim", "sam")
    ]
    assert rows[0]["n_a"] == 2 and rows[0]["mae_a"] == pytest.approx(0.15, rel=1e-6)
    assert rows[0]["mae_b"] == pytest.approx(5.0)
    assert rows[1]["mae_a"] == 0.0 and rows[1]["psnr_a"] == math.inf


def _tile(name: str, gap: bool) -> TileSeries:
    t, c, h, w = 4, 2, 12, 12
    rng = np.random.default_rng(4)
    s2 = rng.integers(500, 4000, size=(t, c, h, w)).astype(np.uint16)
    mask = np.zeros((t, h, w), np.uint8)
    mask[1, :3, :] = 1  # cloud
    mask[2, 0, 0] = 255  # nodata
    s2[2, :, 0, 0] = 0
    g = None
    if gap:
        g = np.zeros((t, h, w), bool)
        g[1, 5:8, 5:8] = True  # 9 hidden clear pixels
        g[3, :2, :] = True  # 24 hidden clear pixels
    return TileSeries(
        tile=name,
        split="test" if gap else "train",
        s2=s2,
        mask=mask,
        dates=["2021-01-01", "2021-01-11", "2021-01-21", "2021-02-10"],
        doy=np.array([1, 11, 21, 41], np.int16),
        crs=CRS.from_epsg(32633),
        transform=Affine(10, 0, 0, 0, -10, 0),
        gap=g,
    )


def test_evaluate_tiles_table() -> None:
    tiles = [_tile("a", gap=True), _tile("b", gap=False)]
    methods = {"linear": as_method("linear"), "truth": lambda tile, avail: tile.reflectance()}
    df = evaluate_tiles(tiles, methods)
    assert tuple(df.columns) == METRIC_COLUMNS
    assert METRIC_COLUMNS[:6] == ("tile", "split", "date", "method", "n_masked", "mae_masked")
    assert METRIC_COLUMNS[10:12] == ("n_observed", "mae_observed")
    assert len(METRIC_COLUMNS) == 16
    assert len(df) == 4 * 2  # tile b has no gap: skipped
    assert set(df["tile"]) == {"a"} and set(df["split"]) == {"test"}
    lin = df[df["method"] == "linear"].reset_index(drop=True)
    assert lin["date"].tolist() == tiles[0].dates
    assert lin["n_masked"].tolist() == [0, 9, 0, 24]
    assert lin["n_observed"].tolist() == [144, 144 - 36 - 9, 143, 144 - 24]
    assert np.isnan(lin.loc[0, "mae_masked"]) and lin.loc[1, "mae_masked"] > 0
    assert (lin["mae_observed"] == 0).all()  # baselines return the input where available
    perfect = df[df["method"] == "truth"]
    assert (perfect.loc[perfect["n_masked"] > 0, "mae_masked"] == 0).all()
    assert perfect.loc[perfect["n_masked"] > 0, "ssim_masked"].tolist() == pytest.approx([1, 1])

    summary = summarise(df)
    assert summary["method"].tolist() == ["linear", "truth"]
    row = summary.iloc[0]
    assert row["rows"] == 4 and row["n_masked"] == 33
    m = lin["mae_masked"]
    assert row["mae_masked"] == pytest.approx(np.nanmean(m))
    assert row["mae_masked_pixel"] == pytest.approx((m[1] * 9 + m[3] * 24) / 33)


def test_evaluate_tiles_rejects_wrong_shapes() -> None:
    def bad(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return tile.reflectance()[:, :1]

    with pytest.raises(InputDataError, match=r"tile a.*'bad'"):
        evaluate_tiles([_tile("a", gap=True)], {"bad": bad})


def test_evaluate_tiles_empty() -> None:
    df = evaluate_tiles([], {"linear": as_method("linear")})
    assert isinstance(df, pd.DataFrame) and df.empty
    assert tuple(df.columns) == METRIC_COLUMNS
