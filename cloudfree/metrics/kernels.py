"""Metric kernels on arrays: MAE, RMSE, PSNR, SSIM and SAM of a (C, H, W) image on a pixel
selection; all of them at once on several pixel sets of an image, of every date of a
(T, C, H, W) series, or pooled over the series (U-TILISE's convention: all selected pixels of
all dates together); and the difficulty of an input sequence (cloud fraction, distance to an
available date), per date and pooled.

Reflectance is in [0, 1] (data range 1).  Every metric is NaN for an empty selection.  Plain
functions on numpy arrays: nothing is read or written.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.ndimage import gaussian_filter

METRICS: tuple[str, ...] = ("mae", "rmse", "psnr", "ssim", "sam")
DATA_RANGE = 1.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11 x 11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check_images(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (C, H, W)")


def _check(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> None:
    _check_images(pred, truth)
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
    _check_images(pred, truth)
    return _ssim(pred[None], truth[None])[0]


def _ssim(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """SSIM maps of (..., H, W) images: Gaussian window over the last two axes."""
    x = np.where(np.isfinite(pred), pred, 0.0).astype(np.float64)
    y = np.where(np.isfinite(truth), truth, 0.0).astype(np.float64)
    # The five local moments in one filtering call (one pass over the stack).
    stack = np.stack([x, y, x * x, y * y, x * y])
    sigma = (0.0,) * (stack.ndim - 2) + (SSIM_SIGMA, SSIM_SIGMA)
    ux, uy, xx, yy, xy = gaussian_filter(stack, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")
    vx = xx - ux * ux
    vy = yy - uy * uy
    vxy = xy - ux * uy
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


def score_image(
    pred: np.ndarray,
    truth: np.ndarray,
    sets: Mapping[str, np.ndarray],
    smap: np.ndarray | None = None,
) -> dict[str, float | int]:
    """All metrics of one (C, H, W) image on every pixel set (SSIM map computed once, or
    given as ``smap``)."""
    row: dict[str, float | int] = {}
    for name, selection in sets.items():
        _check(pred, truth, np.asarray(selection))
        sel = scored_pixels(truth, selection)
        n = int(sel.sum())
        row[f"n_{name}"] = n
        if n == 0:
            row.update({f"{m}_{name}": float("nan") for m in METRICS})
            continue
        p, t = pred[:, sel].astype(np.float64), truth[:, sel].astype(np.float64)
        diff = p - t
        row[f"mae_{name}"] = float(np.abs(diff).mean())
        row[f"rmse_{name}"] = float(np.sqrt(np.square(diff).mean()))
        row[f"psnr_{name}"] = _psnr_from_rmse(row[f"rmse_{name}"])
        if smap is None:
            smap = ssim_map(pred, truth)
        row[f"ssim_{name}"] = _ssim_mean(smap, pred, sel)
        row[f"sam_{name}"] = sam(pred, truth, sel)
    return row


def _check_series(pred: np.ndarray, truth: np.ndarray, sets: Mapping[str, np.ndarray]) -> None:
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (T, C, H, W)")
    for name, selection in sets.items():
        if np.shape(selection) != (truth.shape[0], *truth.shape[2:]):
            raise ValueError(f"set {name!r} has shape {np.shape(selection)}, expected (T, H, W)")


def ssim_maps(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(T, C, H, W) SSIM maps of every date of a series (:func:`ssim_map` per date)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (T, C, H, W)")
    return _ssim(pred, truth)


def score_series(
    pred: np.ndarray,
    truth: np.ndarray,
    sets: Mapping[str, np.ndarray],
    smaps: np.ndarray | None = None,
) -> list[dict[str, float | int]]:
    """One dict per date: ``n_<set>, mae_<set>, rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``.

    ``pred``/``truth`` are (T, C, H, W); every set is a (T, H, W) bool selection; ``smaps``
    the series' SSIM maps when already computed (:func:`ssim_maps`).
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_series(pred, truth, sets)
    return [
        score_image(
            pred[t],
            truth[t],
            {name: sel[t] for name, sel in sets.items()},
            None if smaps is None else smaps[t],
        )
        for t in range(truth.shape[0])
    ]


def score_pooled(
    pred: np.ndarray,
    truth: np.ndarray,
    sets: Mapping[str, np.ndarray],
    smaps: np.ndarray | None = None,
) -> dict[str, float | int]:
    """All metrics of a (T, C, H, W) series pooled over its dates: every selected pixel of
    every date counts once (MAE, RMSE and PSNR over pixels and bands, SSIM the mean of the
    dates' SSIM maps over the selected pixels, SAM the mean angle); ``n_<set>`` pixels."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_series(pred, truth, sets)
    t, c, h, w = truth.shape
    # The dates side by side as one (C, T*H, W) image: per-pixel metrics pool over dates.
    flat_pred = pred.transpose(1, 0, 2, 3).reshape(c, t * h, w)
    flat_truth = truth.transpose(1, 0, 2, 3).reshape(c, t * h, w)
    maps = ssim_maps(pred, truth) if smaps is None else smaps
    flat_maps = maps.transpose(1, 0, 2, 3).reshape(c, t * h, w)
    row = score_image(
        flat_pred, flat_truth, {k: np.reshape(v, (t * h, w)) for k, v in sets.items()}, flat_maps
    )
    return row


def pooled_difficulty(
    available: np.ndarray, valid: np.ndarray, masked: np.ndarray, days: np.ndarray
) -> tuple[float, float]:
    """``cloud_fraction`` and ``gap_days`` of a whole input sequence: the share of its valid
    pixels the method cannot see, and the mean over its masked pixels (with an available
    date) of the distance in days to the nearest date where the pixel is available."""
    valid = np.asarray(valid, dtype=bool)
    n_valid = int(valid.sum())
    seen = int((np.asarray(available, dtype=bool) & valid).sum())
    cloud = 1.0 - seen / n_valid if n_valid else float("nan")
    dist = available_distance(np.asarray(available, dtype=bool), np.asarray(days, dtype=float))
    d = dist[np.asarray(masked, dtype=bool)]
    d = d[np.isfinite(d)]
    return cloud, float(d.mean()) if d.size else float("nan")


def available_distance(available: np.ndarray, days: np.ndarray) -> np.ndarray:
    """(T, H, W) days from each date to the nearest date the pixel is available (inf: none)."""
    n_dates = available.shape[0]
    prev = np.empty(available.shape, dtype=np.float64)
    nxt = np.empty(available.shape, dtype=np.float64)
    last = np.full(available.shape[1:], -np.inf)
    for t in range(n_dates):
        last = np.where(available[t], days[t], last)
        prev[t] = last
    last = np.full(available.shape[1:], np.inf)
    for t in range(n_dates - 1, -1, -1):
        last = np.where(available[t], days[t], last)
        nxt[t] = last
    return np.minimum(days[:, None, None] - prev, nxt - days[:, None, None])


def input_difficulty(
    available: np.ndarray, valid: np.ndarray, masked: np.ndarray, days: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per date ``cloud_fraction`` and ``gap_days`` of an input sequence, each (T,).

    ``available`` (what the method sees), ``valid`` (image has data) and ``masked``
    (pixels scored as hidden) are (T, H, W) bool; ``days`` (T,) are the dates in days.

    - ``cloud_fraction[t]`` = 1 - mean(available[t]) over the valid pixels of date t: the
      share of the date's valid pixels the method cannot see (cloud, shadow or evaluation
      gap); NaN if the date has no valid pixel.
    - ``gap_days[t]`` = mean over the masked pixels of date t of the distance in days to
      the nearest date at which that pixel is available.  Masked pixels that are never
      available at any date have no such distance and are left out of the mean; NaN if
      no masked pixel (with an available date) remains.
    """
    available = np.asarray(available, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    masked = np.asarray(masked, dtype=bool)
    days = np.asarray(days, dtype=np.float64)
    n_dates = available.shape[0]
    if valid.shape != available.shape or masked.shape != available.shape:
        raise ValueError(
            f"available {available.shape}, valid {valid.shape} and masked {masked.shape} differ"
        )
    if days.shape != (n_dates,):
        raise ValueError(f"days {days.shape} does not match {n_dates} dates")
    n_valid = valid.sum(axis=(1, 2))
    n_seen = (available & valid).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        cloud_fraction = np.where(n_valid > 0, 1.0 - n_seen / np.maximum(n_valid, 1), np.nan)
    dist = available_distance(available, days)  # nearest available date, per pixel
    gap_days = np.full(n_dates, np.nan)
    for t in range(n_dates):
        d = dist[t][masked[t]]
        d = d[np.isfinite(d)]
        if d.size:
            gap_days[t] = float(d.mean())
    return cloud_fraction.astype(np.float64), gap_days
