"""Metrics against hand-computed values and scikit-image; evaluation table layout."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from rasterio.crs import CRS
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.metrics.kernels import band_mae, mae, psnr, rmse, sam, ssim
from cloudfree.metrics.summary import summarise
from cloudfree.metrics.table import (
    METRIC_COLUMNS,
    as_method,
    evaluate_region,
    evaluate_tiles,
    input_difficulty,
    metric_columns,
    score_series,
)
from cloudfree.packed import TileSeries


def skimage_ssim_maps(truth: np.ndarray, pred: np.ndarray) -> list[np.ndarray]:
    """Per-band SSIM maps from scikit-image with the Wang et al. settings used here."""
    return [
        structural_similarity(
            t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=1.0, full=True,
        )[1]
        for t, p in zip(truth, pred, strict=True)
    ]  # fmt: skip


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
    maps = skimage_ssim_maps(truth, pred)
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
    maps = skimage_ssim_maps(filled_truth, filled_pred)
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
        evaluate_tiles([_tile("a", gap=True)], {"bad": bad}, bands=("B02", "B03"))
    with pytest.raises(InputDataError, match=r"tile a: 2 bands, expected 13"):
        evaluate_tiles([_tile("a", gap=True)], {"linear": as_method("linear")})


def test_evaluate_tiles_empty() -> None:
    df = evaluate_tiles([], {"linear": as_method("linear")})
    assert isinstance(df, pd.DataFrame) and df.empty
    assert tuple(df.columns) == METRIC_COLUMNS


def test_evaluate_tiles_missing_method_names_tile_and_method() -> None:
    def lookup(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        return {}[tile.tile]

    def no_file(tile: TileSeries, available: np.ndarray) -> np.ndarray:
        raise InputDataError(f"eval.h5: no prediction for tile {tile.tile}")

    tiles = [_tile("a", gap=True)]
    for name, fn in (("lookup", lookup), ("model", no_file), ("none", None)):
        with pytest.raises(InputDataError, match=rf"tile a, method '{name}'"):
            evaluate_tiles(tiles, {name: fn}, bands=("B02", "B03"))  # type: ignore[dict-item]
    with pytest.raises(InputDataError, match=r"tile a, method 'nothing'"):
        evaluate_tiles(tiles, {"nothing": lambda t, a: None}, bands=("B02", "B03"))


# A hand-built 1 x 3 tile: p0, p1, p2 over days 0, 10, 25, 40.
#   t0: p1 cloudy            -> available p0, p2
#   t1: p0, p1 in the gap    -> available p2;      masked p0, p1
#   t2: p2 nodata            -> available p0, p1
#   t3: p0 in the gap        -> available p1, p2;  masked p0
OFFSETS = np.array([0.01, -0.03])  # prediction error per band on masked pixels


def _hand_tile() -> TileSeries:
    s2 = np.full((4, 2, 1, 3), 1000, np.uint16)
    s2[:, 1] = 2000
    mask = np.zeros((4, 1, 3), np.uint8)
    mask[0, 0, 1] = 1
    mask[2, 0, 2] = 255
    s2[2, :, 0, 2] = 0
    gap = np.zeros((4, 1, 3), bool)
    gap[1, 0, :2] = True
    gap[3, 0, 0] = True
    return TileSeries(
        tile="h",
        split="test",
        s2=s2,
        mask=mask,
        dates=["2021-01-01", "2021-01-11", "2021-01-26", "2021-02-10"],
        doy=np.array([1, 11, 26, 41], np.int16),
        crs=CRS.from_epsg(32633),
        transform=Affine(10, 0, 0, 0, -10, 0),
        gap=gap,
    )


def _offset_method(tile: TileSeries, available: np.ndarray) -> np.ndarray:
    """Exact where available, truth + OFFSETS at hidden clear pixels, 0.5 elsewhere."""
    truth = tile.reflectance().astype(np.float64)
    pred = np.where(np.isfinite(truth), truth, 0.5)
    hidden = tile.clear & ~available
    return pred + OFFSETS[None, :, None, None] * hidden[:, None]


def test_hand_tile_sets_band_mae_and_difficulty() -> None:
    df = evaluate_tiles([_hand_tile()], {"m": _offset_method}, bands=("B02", "B03"))
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


def test_input_difficulty_pixel_never_available() -> None:
    available = np.zeros((3, 1, 2), bool)
    available[0, 0, 1] = True
    masked = np.zeros((3, 1, 2), bool)
    masked[1, 0, :] = True  # p0 is never available: left out of the mean
    masked[2, 0, 0] = True  # only p0: NaN
    valid = np.ones((3, 1, 2), bool)
    valid[2, 0, :] = False  # no valid pixel: NaN cloud fraction
    cf, gd = input_difficulty(available, valid, masked, np.array([0, 5, 12]))
    assert cf[:2].tolist() == [0.5, 1.0] and np.isnan(cf[2])
    assert np.isnan(gd[0]) and gd[1] == 5.0 and np.isnan(gd[2])


def test_band_mae_by_hand() -> None:
    pred, truth, sel = _pair()
    assert band_mae(pred, truth, sel).tolist() == pytest.approx([0.15, 0.15])  # (.1+.2), (.3+0)
    assert np.isnan(band_mae(pred, truth, np.zeros((2, 2), bool))).all()


def test_default_bands_table_columns() -> None:
    tile = _hand_tile()
    tile.s2 = np.repeat(tile.s2[:, :1], len(S2_L1C_BANDS), axis=1)
    df = evaluate_tiles([tile], {"linear": as_method("linear")})
    assert tuple(df.columns) == METRIC_COLUMNS
    band_cols = [f"mae_masked_{b}" for b in S2_L1C_BANDS]
    masked = df["n_masked"] > 0
    np.testing.assert_allclose(
        df.loc[masked, band_cols].mean(axis=1), df.loc[masked, "mae_masked"], rtol=1e-9
    )


def test_evaluate_region_uses_the_packed_bands(tmp_path) -> None:
    from .packed import make_packed

    path = make_packed(tmp_path / "p.h5", n_tiles=3, size=16, dates=4, bands=["NDVI", "NDWI"])
    df = evaluate_region(path, {"linear": as_method("linear")})
    assert tuple(df.columns) == metric_columns(["NDVI", "NDWI"])
    assert len(df) == 4
