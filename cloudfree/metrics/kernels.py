"""Metric kernels on (C, H, W) arrays and a pixel selection: MAE, RMSE, PSNR, SSIM, SAM.

Reflectance is in [0, 1] (data range 1).  Every kernel returns NaN for an empty selection.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

SSIM_SIGMA = 1.5


SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11 x 11 window


DATA_RANGE = 1.0
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (C, H, W)")
    if selection.shape != truth.shape[1:]:
        raise ValueError(f"selection {selection.shape} does not match images {truth.shape}")


def scored_pixels(truth: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """(H, W) pixels that are scored: selected and with finite truth in every band."""
    return np.asarray(selection, dtype=bool) & np.isfinite(truth).all(axis=0)


def _pairs(
    pred: np.ndarray, truth: np.ndarray, selection: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check(pred, truth, np.asarray(selection))
    sel = scored_pixels(truth, selection)
    return pred[:, sel].astype(np.float64), truth[:, sel].astype(np.float64)


def mae(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> float:
    """Mean absolute error over bands and scored pixels."""
    p, t = _pairs(pred, truth, selection)
    return float(np.abs(p - t).mean()) if p.size else float("nan")


def rmse(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> float:
    """Root mean squared error over bands and scored pixels."""
    p, t = _pairs(pred, truth, selection)
    return float(np.sqrt(np.square(p - t).mean())) if p.size else float("nan")


def _psnr_from_rmse(value: float) -> float:
    if not np.isfinite(value):
        return float("nan")
    if value == 0:
        return float("inf")
    return float(20.0 * np.log10(DATA_RANGE / value))


def psnr(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> float:
    """20 log10(1 / RMSE) in dB; inf for a perfect prediction, NaN for no pixels."""
    return _psnr_from_rmse(rmse(pred, truth, selection))


def sam(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> float:
    """Mean spectral angle (degrees) between predicted and true per-pixel band vectors."""
    p, t = _pairs(pred, truth, selection)
    if not p.size:
        return float("nan")
    dot = (p * t).sum(axis=0)
    norm = np.sqrt(np.square(p).sum(axis=0)) * np.sqrt(np.square(t).sum(axis=0))
    both_zero = ~p.any(axis=0) & ~t.any(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norm > 0, dot / np.where(norm > 0, norm, 1.0), np.where(both_zero, 1, 0))
    cos = np.where(np.isnan(dot), np.nan, cos)  # NaN predictions stay visible
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def ssim_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(C, H, W) SSIM map per band; non-finite inputs are set to 0 before filtering."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (C, H, W)")
    x = np.where(np.isfinite(pred), pred, 0.0).astype(np.float64)
    y = np.where(np.isfinite(truth), truth, 0.0).astype(np.float64)

    def blur(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(
            a, sigma=(0.0, SSIM_SIGMA, SSIM_SIGMA), truncate=SSIM_TRUNCATE, mode="reflect"
        )

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def _ssim_mean(smap: np.ndarray, pred: np.ndarray, sel: np.ndarray) -> float:
    if not sel.any():
        return float("nan")
    if not np.isfinite(pred[:, sel]).all():
        return float("nan")
    return float(smap[:, sel].mean(dtype=np.float64))


def ssim(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> float:
    """Mean SSIM over bands and scored pixels (map computed on the full image)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check(pred, truth, np.asarray(selection))
    return _ssim_mean(ssim_map(pred, truth), pred, scored_pixels(truth, selection))


def band_mae(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """(C,) mean absolute error per band over the scored pixels; all NaN if none."""
    p, t = _pairs(pred, truth, selection)
    if not p.shape[1]:
        return np.full(p.shape[0], np.nan)
    return np.abs(p - t).mean(axis=1)
