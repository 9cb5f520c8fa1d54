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

:func:`evaluate_tiles` builds the per tile, date and method table (:data:`METRIC_COLUMNS`):
the metrics on three pixel sets (``masked``, ``observed``, ``all``), the per-band MAE on
masked pixels and two descriptors of how hard the date is (``cloud_fraction``,
``gap_days``).  Per-method summaries with bootstrap intervals are in
:mod:`cloudfree.summary`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from .bands import S2_L1C_BANDS
from .errors import InputDataError

if TYPE_CHECKING:
    from .packing import TileSeries

METRICS: tuple[str, ...] = ("mae", "rmse", "psnr", "ssim", "sam")
SETS: tuple[str, ...] = ("masked", "observed", "all")
KEY_COLUMNS: tuple[str, ...] = ("tile", "split", "date", "method")
SUMMARY_SETS: tuple[str, ...] = ("masked", "observed")  # the sets summaries report
DIFFICULTY_COLUMNS: tuple[str, ...] = ("cloud_fraction", "gap_days")


def metric_columns(bands: Iterable[str] = S2_L1C_BANDS) -> tuple[str, ...]:
    """Columns of the :func:`evaluate_tiles` table for the given band names, in order.

    ``tile, split, date, method``; per set (masked, observed, all) ``n_<set>, mae_<set>,
    rmse_<set>, psnr_<set>, ssim_<set>, sam_<set>``; ``mae_masked_<band>`` per band;
    ``cloud_fraction, gap_days``.
    """
    return (
        KEY_COLUMNS
        + tuple(col for s in SETS for col in (f"n_{s}", *(f"{m}_{s}" for m in METRICS)))
        + tuple(f"mae_masked_{b}" for b in bands)
        + DIFFICULTY_COLUMNS
    )


METRIC_COLUMNS: tuple[str, ...] = metric_columns()
"""The table's columns for the default 13 Sentinel-2 L1C bands (stable: only appended to)."""

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


def band_mae(pred: np.ndarray, truth: np.ndarray, selection: np.ndarray) -> np.ndarray:
    """(C,) mean absolute error per band over the scored pixels; all NaN if none."""
    p, t = _pairs(pred, truth, selection)
    if not p.shape[1]:
        return np.full(p.shape[0], np.nan)
    return np.abs(p - t).mean(axis=1)


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
    # Nearest available date before/at and after/at each date, per pixel (inf: none).
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
    dist = np.minimum(days[:, None, None] - prev, nxt - days[:, None, None])
    gap_days = np.full(n_dates, np.nan)
    for t in range(n_dates):
        d = dist[t][masked[t]]
        d = d[np.isfinite(d)]
        if d.size:
            gap_days[t] = float(d.mean())
    return cloud_fraction.astype(np.float64), gap_days


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


def evaluate_tiles(
    tiles: Iterable[TileSeries],
    predict: Mapping[str, Method],
    bands: Iterable[str] = S2_L1C_BANDS,
) -> pd.DataFrame:
    """Score every method on every tile that has evaluation gaps (tiles without are skipped).

    Each method is called as ``predict[name](tile, available)`` with ``available = clear &
    ~gap`` and must return (T, C, H, W) reflectance.  Truth is ``tile.reflectance()``; the
    sets are ``masked = clear & gap`` (hidden, truth known), ``observed = clear & ~gap``
    and ``all = clear`` (masked and observed together, so ``n_all = n_masked +
    n_observed``).  ``bands`` names the C bands (default the 13 Sentinel-2 L1C bands) for
    the per-band columns ``mae_masked_<band>`` (MAE on masked pixels; NaN if none).

    ``cloud_fraction`` and ``gap_days`` describe the input of the date (the same for every
    method), see :func:`input_difficulty`: the share of the date's valid pixels the
    method cannot see, and the mean distance in days from a masked pixel to the nearest
    date where that pixel is available.

    Rows (one per tile, method and date, in that nesting order) have the columns
    ``metric_columns(bands)`` (:data:`METRIC_COLUMNS` for the default bands).  A method
    that fails to find a tile (``KeyError``/``InputDataError``), is not callable or
    returns the wrong shape raises :class:`InputDataError` naming the tile and method; so
    does a tile whose band count differs from ``len(bands)``.
    """
    bands = tuple(bands)
    columns = metric_columns(bands)
    rows: list[dict[str, object]] = []
    for tile in tiles:
        if tile.gap is None:
            continue
        truth = tile.reflectance()
        if truth.shape[1] != len(bands):
            raise InputDataError(
                f"tile {tile.tile}: {truth.shape[1]} bands, expected {len(bands)} "
                f"({', '.join(bands)})"
            )
        clear = tile.clear
        gap = np.asarray(tile.gap, dtype=bool)
        if gap.shape != clear.shape:
            raise InputDataError(f"tile {tile.tile}: gap {gap.shape} != mask {clear.shape}")
        available = clear & ~gap
        masked = clear & gap
        sets = {"masked": masked, "observed": available, "all": clear}
        cloud_fraction, gap_days = input_difficulty(available, tile.valid, masked, tile.days)
        for method, fn in predict.items():
            pred = _predict(tile, method, fn, available)
            if pred.shape != truth.shape:
                raise InputDataError(
                    f"tile {tile.tile}, method {method!r}: prediction has shape {pred.shape}, "
                    f"expected {truth.shape}"
                )
            scored = score_series(pred, truth, sets)
            for t, (date, scores) in enumerate(zip(tile.dates, scored, strict=True)):
                per_band = band_mae(pred[t], truth[t], masked[t])
                rows.append(
                    {"tile": tile.tile, "split": tile.split, "date": date, "method": method}
                    | scores
                    | {f"mae_masked_{b}": float(v) for b, v in zip(bands, per_band, strict=True)}
                    | {"cloud_fraction": cloud_fraction[t], "gap_days": gap_days[t]}
                )
    return pd.DataFrame(rows, columns=list(columns))


def _predict(tile: TileSeries, method: str, fn: Method | None, available: np.ndarray) -> np.ndarray:
    """Call one method on one tile; a missing method or tile names both in the error."""
    if fn is None or not callable(fn):
        raise InputDataError(f"tile {tile.tile}, method {method!r}: no callable method ({fn!r})")
    try:
        out = fn(tile, available.copy())
    except (InputDataError, LookupError) as exc:
        raise InputDataError(f"tile {tile.tile}, method {method!r}: no prediction ({exc})") from exc
    if out is None:
        raise InputDataError(f"tile {tile.tile}, method {method!r}: returned no prediction")
    return np.asarray(out)


def evaluate_region(
    packed_path: str | os.PathLike[str], predict: Mapping[str, Method], split: str | None = "test"
) -> pd.DataFrame:
    """:func:`evaluate_tiles` on the tiles of one split of a packed file (its own bands)."""
    from .packing import iter_tiles, packed_bands

    return evaluate_tiles(iter_tiles(packed_path, split), predict, packed_bands(packed_path))


def summarise(df: pd.DataFrame, *, baseline: str = "linear", **kwargs: object) -> pd.DataFrame:
    """Per-method summary of an :func:`evaluate_tiles` table (kept for the workflow).

    The columns of :func:`cloudfree.summary.summarise_region` (tile-level means, medians,
    bootstrap intervals, paired differences to ``baseline`` and pixel-weighted MAE), with
    ``n_masked, n_observed`` (total scored pixels per method) inserted after ``rows``.
    ``kwargs`` go to :func:`~cloudfree.summary.summarise_region` (``n_boot``, ``seed``).
    """
    from .summary import summarise_region

    out = summarise_region(df, baseline=baseline, **kwargs)  # type: ignore[arg-type]
    totals = df.groupby("method", sort=False)[[f"n_{s}" for s in SUMMARY_SETS]].sum()
    at = list(out.columns).index("rows") + 1
    for i, s in enumerate(SUMMARY_SETS):
        values = totals[f"n_{s}"].reindex(out["method"]).to_numpy()
        out.insert(at + i, f"n_{s}", values.astype(np.int64))
    return out
