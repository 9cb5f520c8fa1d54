"""Metric kernels against hand-computed values and scikit-image; scores of an image series;
the input's difficulty per date."""

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
    psnr,
    rmse,
    sam,
    score_series,
    ssim,
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
