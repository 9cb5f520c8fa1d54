"""Metric kernels against hand-computed values and scikit-image; scores of an image series,
per date and pooled over its dates; the input's difficulty per date and pooled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cloudfree.metrics.kernels import (
    METRICS,
    band_mae,
    input_difficulty,
    mae,
    pooled_difficulty,
    psnr,
    rmse,
    sam,
    score_image,
    score_pooled,
    score_series,
    ssim,
    ssim_map,
    ssim_maps,
)


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


def test_band_mae_by_hand() -> None:
    pred, truth, sel = _pair()
    assert band_mae(pred, truth, sel).tolist() == pytest.approx([0.15, 0.15])  # (.1+.2), (.3+0)
    assert np.isnan(band_mae(pred, truth, np.zeros((2, 2), bool))).all()


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


def test_score_series_agrees_with_each_kernel() -> None:
    rng = np.random.default_rng(8)
    truth = rng.random((3, 4, 10, 9))
    pred = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    truth[1, :, 0, :3] = np.nan  # nodata truth is never scored
    sets = {"a": rng.random((3, 10, 9)) < 0.4, "b": rng.random((3, 10, 9)) < 0.8}
    assert METRICS == ("mae", "rmse", "psnr", "ssim", "sam")
    kernels = {"mae": mae, "rmse": rmse, "psnr": psnr, "ssim": ssim, "sam": sam}
    for t, row in enumerate(score_series(pred, truth, sets)):
        for name, sel in sets.items():
            scored = sel[t] & np.isfinite(truth[t]).all(axis=0)
            assert row[f"n_{name}"] == scored.sum()
            for metric, fn in kernels.items():
                expected = fn(pred[t], truth[t], sel[t])
                assert row[f"{metric}_{name}"] == pytest.approx(expected, rel=1e-12), metric


def test_shapes_are_checked() -> None:
    pred, truth, sel = _pair()
    with pytest.raises(ValueError, match=r"must both be \(C, H, W\)"):
        mae(pred[:1], truth, sel)
    with pytest.raises(ValueError, match="selection"):
        ssim(pred, truth, sel[:1])
    with pytest.raises(ValueError, match=r"must both be \(T, C, H, W\)"):
        score_series(pred, truth, {"a": sel})
    with pytest.raises(ValueError, match=r"set 'a' has shape \(2, 2\)"):
        score_series(pred[None], truth[None], {"a": sel})
    ones = np.ones((2, 1, 2), bool)
    with pytest.raises(ValueError, match="differ"):
        input_difficulty(ones, np.ones((2, 1, 3), bool), ones, np.array([0, 5]))
    with pytest.raises(ValueError, match="does not match 2 dates"):
        input_difficulty(ones, ones, ones, np.array([0]))


def test_ssim_maps_are_the_dates_maps() -> None:
    rng = np.random.default_rng(8)
    truth = rng.random((3, 2, 16, 14))
    pred = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    maps = ssim_maps(pred, truth)
    assert maps.shape == truth.shape
    for t in range(3):
        np.testing.assert_allclose(maps[t], skimage_ssim_maps(truth[t], pred[t]), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        ssim_maps(pred[0], truth[0])


def test_precomputed_ssim_maps_are_used() -> None:
    pred, truth, sel = _pair()
    flat = np.full(truth.shape, 0.25)
    assert score_image(pred, truth, {"a": sel}, flat)["ssim_a"] == 0.25
    assert score_image(pred, truth, {"a": sel})["ssim_a"] == pytest.approx(
        float(ssim_map(pred, truth)[:, sel].mean())
    )
    rows = score_series(pred[None], truth[None], {"a": sel[None]}, flat[None])
    assert rows[0]["ssim_a"] == 0.25 and rows[0]["mae_a"] == pytest.approx(0.15, rel=1e-6)


# A 2-date, 2-band, 3 x 3 series.  Truth (0.3, 0.4) everywhere (norm 0.5); masked:
#   date 0: A (0, 0) predicted (0.4, 0.3), B (1, 1) predicted (0.6, 0.8)
#   date 1: C (0, 1) predicted (0.3, 0.5), D (2, 2) exact, E (2, 0) predicted (0.2, 0.4)
# Every other pixel is off by 0.5 (never selected: it only shows in the SSIM maps).
def _pooled_series() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth = np.empty((2, 2, 3, 3))
    truth[:, 0], truth[:, 1] = 0.3, 0.4
    pred = truth + 0.5
    masked = np.zeros((2, 3, 3), bool)
    for t, (r, c), value in (
        (0, (0, 0), (0.4, 0.3)), (0, (1, 1), (0.6, 0.8)),
        (1, (0, 1), (0.3, 0.5)), (1, (2, 2), (0.3, 0.4)), (1, (2, 0), (0.2, 0.4)),
    ):  # fmt: skip
        pred[t, :, r, c] = value
        masked[t, r, c] = True
    return pred, truth, masked


def _angle(p: tuple[float, float], t: tuple[float, float] = (0.3, 0.4)) -> float:
    cos = (p[0] * t[0] + p[1] * t[1]) / (math.hypot(*p) * math.hypot(*t))
    return math.degrees(math.acos(min(1.0, cos)))


def test_pooled_scores_by_hand() -> None:
    pred, truth, masked = _pooled_series()
    row = score_pooled(pred, truth, {"masked": masked})
    assert list(row) == ["n_masked", *(f"{m}_masked" for m in METRICS)]
    assert row["n_masked"] == 5
    # |errors| A: .1 .1, B: .3 .4, C: 0 .1, D: 0 0, E: .1 0 -> 1.1 over 10 values
    assert row["mae_masked"] == pytest.approx(0.11)
    squared = 0.01 + 0.01 + 0.09 + 0.16 + 0.01 + 0.01
    assert row["rmse_masked"] == pytest.approx(math.sqrt(squared / 10))
    assert row["psnr_masked"] == pytest.approx(-10 * math.log10(squared / 10))
    angles = [_angle(p) for p in ((0.4, 0.3), (0.6, 0.8), (0.3, 0.5), (0.3, 0.4), (0.2, 0.4))]
    assert angles[1] == pytest.approx(0, abs=1e-6) and angles[0] > 16
    assert row["sam_masked"] == pytest.approx(sum(angles) / 5, abs=1e-4)
    # SSIM: the mean of each date's own map over that date's masked pixels, all together
    maps = [ssim_map(pred[t], truth[t]) for t in range(2)]
    values = np.concatenate([maps[t][:, masked[t]].ravel() for t in range(2)])
    assert values.size == 10
    assert row["ssim_masked"] == pytest.approx(float(values.mean()))
    given = score_pooled(pred, truth, {"masked": masked}, np.full(truth.shape, 0.5))
    assert given["ssim_masked"] == 0.5 and given["mae_masked"] == row["mae_masked"]


def test_pooled_and_per_date_differ_with_unequal_pixel_counts() -> None:
    pred, truth, masked = _pooled_series()
    dates = score_series(pred, truth, {"masked": masked})
    assert [d["n_masked"] for d in dates] == [2, 3]
    assert [d["mae_masked"] for d in dates] == pytest.approx([0.9 / 4, 0.2 / 6])
    per_date = (0.9 / 4 + 0.2 / 6) / 2  # each date weighs the same
    pooled = score_pooled(pred, truth, {"masked": masked})["mae_masked"]
    assert pooled == pytest.approx(1.1 / 10)  # each pixel weighs the same
    assert abs(per_date - pooled) > 0.01
    # with equal counts and the same pixels the two agree
    same = np.stack([masked[1], masked[1]])
    two = score_series(pred, truth, {"m": same})
    assert score_pooled(pred, truth, {"m": same})["mae_m"] == pytest.approx(
        (two[0]["mae_m"] + two[1]["mae_m"]) / 2
    )


def test_pooled_empty_and_bad_shapes() -> None:
    pred, truth, masked = _pooled_series()
    row = score_pooled(pred, truth, {"masked": np.zeros_like(masked)})
    assert row["n_masked"] == 0 and all(math.isnan(row[f"{m}_masked"]) for m in METRICS)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        score_pooled(pred, truth, {"masked": masked[0]})
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        score_pooled(pred[0], truth[0], {"masked": masked})


def test_pooled_difficulty_by_hand() -> None:
    # 1 x 2 pixels over days 0, 10, 20: both seen at day 0, none at day 10, p0 at day 20
    available = np.zeros((3, 1, 2), bool)
    available[0] = True
    available[2, 0, 0] = True
    masked = np.zeros((3, 1, 2), bool)
    masked[1] = True  # p0: 10 d to day 0 or 20; p1: 10 d to day 0
    masked[2, 0, 1] = True  # p1: 20 d to day 0
    valid = np.ones((3, 1, 2), bool)
    days = np.array([0, 10, 20])
    cloud, gap = pooled_difficulty(available, valid, masked, days)
    assert cloud == pytest.approx(1 - 3 / 6)
    assert gap == pytest.approx((10 + 10 + 20) / 3)  # per pixel, not the dates' mean (15)
    _, per_date = input_difficulty(available, valid, masked, days)
    assert np.nanmean(per_date) == pytest.approx(15.0)
    # never-available pixels are left out; no valid pixel: NaN cloud fraction
    never = np.zeros_like(available)
    cloud, gap = pooled_difficulty(never, np.zeros_like(valid), masked, days)
    assert math.isnan(cloud) and math.isnan(gap)
