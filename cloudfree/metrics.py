"""Reconstruction metrics on reflectance in [0, 1] and the evaluation of methods on test tiles.

Kernels take ``pred`` and ``truth`` as (C, H, W) float arrays and a (H, W) bool
``selection``.  Only selected pixels whose truth is finite in every band are scored; an
empty selection gives NaN (never 0).  A non-finite prediction at a scored pixel makes the
metric NaN, so a broken method is visible rather than silently skipped.

- ``mae``, ``rmse``: over all bands and scored pixels;
- ``psnr`` = 20 log10(1 / RMSE) (data range 1), ``inf`` when the RMSE is 0;
- ``sam``: mean spectral angle in degrees (per-pixel vectors over the bands; two zero
  vectors have angle 0, one zero vector against a non-zero one 90);
- ``ssim``: Wang et al. (2004) with a Gaussian window (sigma 1.5, 11 x 11), K1 0.01,
  K2 0.03, data range 1 and population covariances (as scikit-image's
  ``gaussian_weights=True, use_sample_covariance=False``), computed per band on the full
  image with non-finite values set to 0, then the SSIM map is averaged over the scored
  pixels and the bands.  Unlike scikit-image's scalar, the border is not cropped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from .errors import InputDataError

if TYPE_CHECKING:
    from .packing import TileSeries

METRICS: tuple[str, ...] = ("mae", "rmse", "psnr", "ssim", "sam")
SETS: tuple[str, ...] = ("masked", "observed")
KEY_COLUMNS: tuple[str, ...] = ("tile", "split", "date", "method")
METRIC_COLUMNS: tuple[str, ...] = KEY_COLUMNS + tuple(
    col for s in SETS for col in (f"n_{s}", *(f"{m}_{s}" for m in METRICS))
)

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5 * 1.5 + 0.5) = 5: an 11 x 11 window
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 1.0

Method = Callable[["TileSeries", np.ndarray], np.ndarray]


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


def score_image(
    pred: np.ndarray, truth: np.ndarray, sets: Mapping[str, np.ndarray]
) -> dict[str, float | int]:
    """All metrics of one (C, H, W) image on every pixel set (SSIM map computed once)."""
    row: dict[str, float | int] = {}
    smap: np.ndarray | None = None
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


def score_series(
    pred: np.ndarray, truth: np.ndarray, sets: Mapping[str, np.ndarray]
) -> list[dict[str, float | int]]:
    """One dict per date: ``n_<set>, mae_<set>, rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``.

    ``pred``/``truth`` are (T, C, H, W); every set is a (T, H, W) bool selection.
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape or pred.ndim != 4:
        raise ValueError(f"pred {pred.shape} and truth {truth.shape} must both be (T, C, H, W)")
    for name, selection in sets.items():
        if np.shape(selection) != (truth.shape[0], *truth.shape[2:]):
            raise ValueError(f"set {name!r} has shape {np.shape(selection)}, expected (T, H, W)")
    return [
        score_image(pred[t], truth[t], {name: sel[t] for name, sel in sets.items()})
        for t in range(truth.shape[0])
    ]


def evaluate_tiles(tiles: Iterable[TileSeries], predict: Mapping[str, Method]) -> pd.DataFrame:
    """Score every method on every tile that has evaluation gaps (tiles without are skipped).

    Each method is called as ``predict[name](tile, available)`` with ``available = clear &
    ~gap`` and must return (T, C, H, W) reflectance.  Truth is ``tile.reflectance()``; the
    sets are ``masked = clear & gap`` (hidden, truth known) and ``observed = clear & ~gap``.
    Rows (one per tile, method and date, in that nesting order) have the columns
    :data:`METRIC_COLUMNS`.
    """
    rows: list[dict[str, object]] = []
    for tile in tiles:
        if tile.gap is None:
            continue
        truth = tile.reflectance()
        clear = tile.clear
        gap = np.asarray(tile.gap, dtype=bool)
        if gap.shape != clear.shape:
            raise InputDataError(f"tile {tile.tile}: gap {gap.shape} != mask {clear.shape}")
        available = clear & ~gap
        sets = {"masked": clear & gap, "observed": available}
        for method, fn in predict.items():
            pred = np.asarray(fn(tile, available.copy()))
            if pred.shape != truth.shape:
                raise InputDataError(
                    f"tile {tile.tile}, method {method!r}: prediction has shape {pred.shape}, "
                    f"expected {truth.shape}"
                )
            for date, scores in zip(tile.dates, score_series(pred, truth, sets), strict=True):
                rows.append(
                    {"tile": tile.tile, "split": tile.split, "date": date, "method": method}
                    | scores
                )
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def evaluate_region(
    packed_path: str | os.PathLike[str], predict: Mapping[str, Method], split: str | None = "test"
) -> pd.DataFrame:
    """:func:`evaluate_tiles` on the tiles of one split of a packed file."""
    from .packing import iter_tiles

    return evaluate_tiles(iter_tiles(packed_path, split), predict)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per method (in order of appearance): mean of every metric over rows, NaNs ignored.

    Columns: ``method, rows``, then per set ``n_<set>`` (total scored pixels), the row means
    ``mae_<set> ... sam_<set>`` and ``mae_<set>_pixel`` (MAE weighted by ``n_<set>``).  A
    PSNR of ``inf`` (perfect prediction, e.g. a baseline on its own observed pixels) makes
    the mean ``inf``.
    """
    out: list[dict[str, object]] = []
    for method, group in df.groupby("method", sort=False):
        row: dict[str, object] = {"method": method, "rows": len(group)}
        for s in SETS:
            n = group[f"n_{s}"].to_numpy(dtype=np.float64)
            row[f"n_{s}"] = int(n.sum())
            for m in METRICS:
                values = group[f"{m}_{s}"].to_numpy(dtype=np.float64)
                kept = values[~np.isnan(values)]
                row[f"{m}_{s}"] = float(kept.mean()) if kept.size else float("nan")
            err = group[f"mae_{s}"].to_numpy(dtype=np.float64)
            ok = ~np.isnan(err) & (n > 0)
            weight = n[ok].sum()
            row[f"mae_{s}_pixel"] = float((err[ok] * n[ok]).sum() / weight) if weight else np.nan
        out.append(row)
    columns = ["method", "rows"] + [
        c for s in SETS for c in (f"n_{s}", *(f"{m}_{s}" for m in METRICS), f"mae_{s}_pixel")
    ]
    return pd.DataFrame(out, columns=columns)
